"""Reading what a semi-supervised method's predictor carries besides its forward pass.

:meth:`ssl_bench.api.Method.fit_segmentation` returns the predictor a row reports; it may
carry ``details`` (merged into the record's details) and ``extra_predictors`` (further
predictors the task scores beside the row). A task that hosts semi-supervised methods reads
both through these functions, which check them and name the method when they are malformed.
"""

from __future__ import annotations

from typing import Any, Collection

from torch import nn

from ssl_bench.errors import SSLBenchError


def predictor_details(predictor: nn.Module, method_id: str, reserved: Collection[str]
                      ) -> dict[str, Any]:
    """A copy of ``predictor.details`` (``{}`` when it has none). ``reserved``: the record
    keys the task writes itself, which a method may not use."""
    details = getattr(predictor, "details", None)
    if details is None:
        return {}
    if not isinstance(details, dict) or not all(isinstance(k, str) for k in details):
        raise SSLBenchError(f"method {method_id!r}: predictor.details must be a dict with str "
                            f"keys, got {type(details).__name__}; fix the method's "
                            "fit_segmentation")
    taken = sorted(set(details) & set(reserved))
    if taken:
        raise SSLBenchError(f"method {method_id!r}: predictor.details uses key {taken[0]!r}, "
                            "which the task writes itself; rename it in the method")
    return dict(details)


def predictor_extras(predictor: nn.Module, method_id: str) -> dict[str, nn.Module]:
    """A copy of ``predictor.extra_predictors`` (name -> module scored on val and test beside
    the row's predictor); ``{}`` when it has none."""
    extra = getattr(predictor, "extra_predictors", None)
    if extra is None:
        return {}
    if not isinstance(extra, dict) or not all(
            isinstance(k, str) and isinstance(v, nn.Module) for k, v in extra.items()):
        raise SSLBenchError(f"method {method_id!r}: predictor.extra_predictors must be a dict "
                            "of str -> nn.Module; fix the method's fit_segmentation")
    return dict(extra)


__all__ = ["predictor_details", "predictor_extras"]
