"""Where ssl-bench keeps caches and the embedded synthetic suite."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    """``$SSL_BENCH_CACHE`` or the user's cache dir (e.g. ``~/.cache/ssl-bench``)."""
    env = os.environ.get("SSL_BENCH_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("ssl-bench"))


def synthetic_root(size: str = "default") -> Path:
    """Where ``ssl-bench data synth`` writes the embedded suite by default."""
    return cache_dir() / "synthetic" / size
