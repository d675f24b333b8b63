"""DistillSelf for ssl-bench: MoCo v2 distilled from a frozen ImageNet teacher (method id
``distill-self``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssl_bench_distill.method import DistillSelf, DistillSelfConfig

__all__ = ["DistillSelf", "DistillSelfConfig"]


def __getattr__(name: str) -> Any:
    """The classes import torch: they load on first use, so that loading the plugin (its entry
    point, :mod:`ssl_bench_distill.plugin`) stays light."""
    if name in __all__:
        from ssl_bench_distill import method

        return getattr(method, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
