"""Entry point ``ssl_bench: distill`` -> registers the ``distill-self`` method."""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl

from ssl_bench_distill.method import DistillSelf


@hookimpl
def register_methods(register: Callable[[Any], None]) -> None:
    register(DistillSelf)
