"""Built-in baseline methods, registered through the ``register_methods`` hook."""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl

METHODS: list = []


@hookimpl
def register_methods(register: Callable[[Any], None]) -> None:
    for method in METHODS:
        register(method)
