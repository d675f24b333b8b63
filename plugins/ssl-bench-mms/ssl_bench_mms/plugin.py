"""Registers the MMS method with ssl-bench (entry point group ``ssl_bench``)."""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl

from ssl_bench_mms.method import MMSMethod


@hookimpl
def register_methods(register: Callable[[Any], None]) -> None:
    register(MMSMethod)
