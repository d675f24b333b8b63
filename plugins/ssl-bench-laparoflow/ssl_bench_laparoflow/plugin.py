"""Entry point of the ``ssl_bench`` group: registers the ``laparoflow-ssl`` method."""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl
from ssl_bench_laparoflow.method import LaparoflowSSL


@hookimpl
def register_methods(register: Callable[[Any], None]) -> None:
    register(LaparoflowSSL)
