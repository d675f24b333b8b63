"""iBoot for ssl-bench: a causal video encoder bootstrapped from a frozen image model (method id
``iboot``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssl_bench_iboot.method import IBoot, IBootConfig

__all__ = ["IBoot", "IBootConfig"]


def __getattr__(name: str) -> Any:
    """The classes import torch: they load on first use, so that loading the plugin (its entry
    point, :mod:`ssl_bench_iboot.plugin`) stays light."""
    if name in __all__:
        from ssl_bench_iboot import method

        return getattr(method, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
