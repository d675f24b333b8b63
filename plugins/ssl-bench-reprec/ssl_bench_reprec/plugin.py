"""Entry point ``ssl_bench: reprec`` -> registers the ``reprec`` method.

The method is registered by import path with its metadata (:mod:`ssl_bench_reprec.meta`), so
loading the plugin imports no torch; ``ssl-bench run`` imports :mod:`ssl_bench_reprec.method`
when it needs it.
"""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl
from ssl_bench.lazy import LazyClass
from ssl_bench.meta import PROFILES
from ssl_bench_reprec.meta import REPREC_META


@hookimpl
def register_methods(register: Callable[[Any], None]) -> None:
    register(LazyClass("ssl_bench_reprec.method:RepRec", meta=REPREC_META, profiles=PROFILES))
