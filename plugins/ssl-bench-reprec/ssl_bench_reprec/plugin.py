"""Entry point of the ``ssl_bench`` group: registers the ``reprec`` method."""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl
from ssl_bench_reprec.method import RepRec


@hookimpl
def register_methods(register: Callable[[Any], None]) -> None:
    register(RepRec)
