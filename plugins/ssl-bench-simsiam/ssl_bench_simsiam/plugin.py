"""Entry point module: ``[project.entry-points.ssl_bench] simsiam = "ssl_bench_simsiam.plugin"``."""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl
from ssl_bench_simsiam.method import SimSiam


@hookimpl
def register_methods(register: Callable[[Any], None]) -> None:
    register(SimSiam)
