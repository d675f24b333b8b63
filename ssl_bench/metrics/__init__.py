"""Metric implementations: surgical phase recognition, tool presence, 2-D segmentation, CT
organs.

Values are in percent (0-100), except HD95 which is in mm. The public functions are re-exported
lazily (PEP 562 ``__getattr__``), so ``import ssl_bench.metrics.phase`` does not import MONAI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    # phase.py
    "phase_metrics": "phase",
    "relaxed_video_scores": "phase",
    "relaxed_diff": "phase",
    "strict_video_scores": "phase",
    "video_aggregate": "phase",
    "matlab_aggregate": "phase",
    "boundary_frames": "phase",
    "gt_runs": "phase",
    "VideoScores": "phase",
    "MatlabSummary": "phase",
    "CHOLEC80_RELAXED_GROUPS": "phase",
    "M2CAI16_RELAXED_GROUPS": "phase",
    # tools.py
    "average_precision": "tools",
    "tool_ap": "tools",
    "tool_metrics": "tools",
    # segmentation.py
    "ConfusionMatrix": "segmentation",
    "segmentation_metrics": "segmentation",
    "per_class_scores": "segmentation",
    # volume.py
    "organ_metrics": "volume",
    "volume_organ_scores": "volume",
    "binary_dice_hd95": "volume",
    "field_of_view_diagonal": "volume",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # static checkers see the real names
    from ssl_bench.metrics.phase import (  # noqa: F401
        CHOLEC80_RELAXED_GROUPS,
        M2CAI16_RELAXED_GROUPS,
        MatlabSummary,
        VideoScores,
        boundary_frames,
        gt_runs,
        matlab_aggregate,
        phase_metrics,
        relaxed_diff,
        relaxed_video_scores,
        strict_video_scores,
        video_aggregate,
    )
    from ssl_bench.metrics.segmentation import (  # noqa: F401
        ConfusionMatrix,
        per_class_scores,
        segmentation_metrics,
    )
    from ssl_bench.metrics.tools import average_precision, tool_ap, tool_metrics  # noqa: F401
    from ssl_bench.metrics.volume import (  # noqa: F401
        binary_dice_hd95,
        field_of_view_diagonal,
        organ_metrics,
        volume_organ_scores,
    )
