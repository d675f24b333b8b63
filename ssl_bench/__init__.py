"""ssl-bench: a plugin-based benchmark harness for self-supervised learning on surgical video
and medical images."""

from ssl_bench.hookspecs import hookimpl

__version__ = "0.2.0"

__all__ = ["hookimpl", "__version__"]
