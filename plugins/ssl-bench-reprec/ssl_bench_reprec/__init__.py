"""RepRec (Yan et al., WACV 2023) as an ssl-bench method plugin."""

from __future__ import annotations

from ssl_bench_reprec.method import (ParallelRepRecEncoder, RepRec, RepRecConfig, RepRecEncoder,
                                     RepRecModel, StackedRepRecEncoder)

__all__ = ["RepRec", "RepRecConfig", "RepRecEncoder", "ParallelRepRecEncoder",
           "StackedRepRecEncoder", "RepRecModel"]
