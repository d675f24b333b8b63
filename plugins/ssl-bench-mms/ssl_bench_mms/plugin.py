"""Entry point ``ssl_bench: mms`` -> registers the ``mms`` method.

The method is registered by import path with its metadata (:mod:`ssl_bench_mms.meta`), so
loading the plugin imports no torch; ``ssl-bench run`` imports :mod:`ssl_bench_mms.method` when
it needs it.
"""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl
from ssl_bench.lazy import LazyClass
from ssl_bench.meta import PROFILES
from ssl_bench_mms.meta import MMS_META


@hookimpl
def register_methods(register: Callable[[Any], None]) -> None:
    register(LazyClass("ssl_bench_mms.method:MMSMethod", meta=MMS_META, profiles=PROFILES))
