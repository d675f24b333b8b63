"""RepRec (Yan et al., WACV 2023) as an ssl-bench method plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssl_bench_reprec.method import (
        ParallelRepRecEncoder,
        RepRec,
        RepRecConfig,
        RepRecEncoder,
        RepRecModel,
        StackedRepRecEncoder,
    )

__all__ = ["RepRec", "RepRecConfig", "RepRecEncoder", "ParallelRepRecEncoder",
           "StackedRepRecEncoder", "RepRecModel"]


def __getattr__(name: str) -> Any:
    """The classes import torch: they load on first use, so that loading the plugin (its entry
    point, :mod:`ssl_bench_reprec.plugin`) stays light."""
    if name in __all__:
        from ssl_bench_reprec import method

        return getattr(method, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
