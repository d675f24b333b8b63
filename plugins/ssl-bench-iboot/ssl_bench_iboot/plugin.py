"""Entry point ``ssl_bench: iboot`` -> registers the ``iboot`` method."""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl

from ssl_bench_iboot.method import IBoot


@hookimpl
def register_methods(register: Callable[[Any], None]) -> None:
    register(IBoot)
