"""Entry point ``ssl_bench: distill`` -> registers the ``distill-self`` method.

The method is registered by import path with its metadata (:mod:`ssl_bench_distill.meta`), so
loading the plugin imports no torch; ``ssl-bench run`` imports :mod:`ssl_bench_distill.method`
when it needs it.
"""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl
from ssl_bench.lazy import LazyClass
from ssl_bench.meta import PROFILES
from ssl_bench_distill.meta import DISTILL_SELF_META


@hookimpl
def register_methods(register: Callable[[Any], None]) -> None:
    register(LazyClass("ssl_bench_distill.method:DistillSelf", meta=DISTILL_SELF_META,
                       profiles=PROFILES))
