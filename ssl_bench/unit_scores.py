"""Per-test-unit scores: the exact decomposition of an aggregate metric over test units.

Every built-in metric is a *class-wise ratio of sums over units*::

    score = nanmean over classes c with sum_u den[u, c] > 0 of  sum_u num[u, c] / sum_u den[u, c]

so a paired bootstrap can recompute it exactly on a resample of the test units (a unit drawn
twice counts twice). Three shapes cover the built-in tasks:

* a mean of per-unit values (phase accuracy: per video, then averaged) -- one class,
  ``num = value``, ``den = 1`` (a NaN value gives ``0 / 0`` and drops out);
* per class, a mean over the units where the class is defined, then a mean over classes
  (BTCV Dice: per organ over volumes, then over organs) -- ``num = value or 0``,
  ``den = 1 or 0``;
* a pooled ratio over every pixel of every unit (dataset-level IoU: per class
  ``TP / (TP + FP + FN)`` of one confusion matrix) -- ``num = 100 TP``, ``den = TP + FP + FN``.

A task returns the parts of its main score (:attr:`ssl_bench.api.TaskResult.main_parts`); the
engine checks that they reproduce the reported main score before writing the record.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence, cast

import numpy as np


@dataclass
class UnitParts:
    """``num`` and ``den`` of shape (units, classes); see the module docstring."""

    units: list[str]
    num: np.ndarray
    den: np.ndarray

    def __post_init__(self) -> None:
        self.num = np.asarray(self.num, dtype=np.float64)
        self.den = np.asarray(self.den, dtype=np.float64)
        if self.num.ndim != 2 or self.num.shape != self.den.shape:
            raise ValueError(f"num and den must be (units, classes) arrays of one shape, got "
                             f"{self.num.shape} and {self.den.shape}")
        if len(self.units) != self.num.shape[0]:
            raise ValueError(f"{len(self.units)} unit ids for {self.num.shape[0]} rows")
        if len(set(self.units)) != len(self.units):
            raise ValueError("unit ids must be unique")

    def value(self, counts: np.ndarray | None = None) -> float:
        """The aggregate; ``counts`` (one per unit) weights a bootstrap resample."""
        return float(aggregate(self.num, self.den, counts))

    def to_json(self) -> dict[str, object]:
        return {"units": list(self.units), "num": _rows(self.num), "den": _rows(self.den)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> "UnitParts":
        units = [str(u) for u in cast("Iterable[object]", data["units"])]
        return cls(units, _array(data["num"], len(units)), _array(data["den"], len(units)))


def _rows(a: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in row] for row in a]


def _array(rows: object, n: int) -> np.ndarray:
    a = np.asarray(rows, dtype=np.float64)
    return a.reshape(n, -1) if a.size or n == 0 else np.zeros((n, 0))


def aggregate(num: np.ndarray, den: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """nanmean over classes of ``sum_u w_u num / sum_u w_u den``; leading axes of ``counts``
    (shape ``(..., units)``) broadcast, so many resamples are scored in one call."""
    if counts is None:
        n, d = num.sum(axis=0), den.sum(axis=0)
    else:
        counts = np.asarray(counts, dtype=np.float64)
        n, d = counts @ num, counts @ den
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", category=RuntimeWarning)
        ratio = np.where(d > 0, n / np.where(d > 0, d, 1.0), np.nan)
        return np.nanmean(ratio, axis=-1)


def mean_parts(values: Mapping[str, float]) -> UnitParts:
    """A mean of one value per unit (NaN values drop out)."""
    units = list(values)
    v = np.array([values[u] for u in units], dtype=np.float64).reshape(-1, 1)
    defined = np.isfinite(v)
    return UnitParts(units, np.where(defined, v, 0.0), defined.astype(np.float64))


def classwise_mean_parts(values: Mapping[str, Sequence[float] | np.ndarray]) -> UnitParts:
    """Per class a mean over the units where it is defined (not NaN), then a mean over classes."""
    units = list(values)
    v = np.array([list(values[u]) for u in units], dtype=np.float64)
    if v.ndim == 1:
        v = v.reshape(len(units), -1)
    defined = np.isfinite(v)
    return UnitParts(units, np.where(defined, v, 0.0), defined.astype(np.float64))


def pooled_parts(units: Sequence[str], num: np.ndarray, den: np.ndarray) -> UnitParts:
    """A pooled ratio: ``num`` and ``den`` summed over units per class, then averaged."""
    return UnitParts(list(units), num, den)


def per_unit_values(units: Sequence[str], metrics: Sequence[Mapping[str, float]]
                    ) -> dict[str, dict[str, float]]:
    """``[{metric: value} per unit]`` -> ``{metric: {unit: value}}`` (every metric any unit has)."""
    names: list[str] = []
    for m in metrics:
        names += [k for k in m if k not in names]
    return {k: {u: float(m.get(k, math.nan)) for u, m in zip(units, metrics)} for k in names}


def check_parts(parts: UnitParts, reported: float, metric: str, tol: float = 1e-6) -> None:
    """Raise ``ValueError`` when the parts do not reproduce the reported aggregate."""
    value = parts.value()
    both_nan = math.isnan(value) and math.isnan(reported)
    if not both_nan and not abs(value - reported) <= tol * max(1.0, abs(reported)):
        raise ValueError(f"the per-unit parts of {metric!r} give {value!r}, but the task "
                         f"reported {reported!r}")


__all__ = ["UnitParts", "aggregate", "mean_parts", "classwise_mean_parts", "pooled_parts",
           "per_unit_values", "check_parts"]
