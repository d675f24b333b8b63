"""Label subsets: one rule for every task.

A label fraction or a label count selects training *units* (videos, clips, volumes), never
frames. The subset is a prefix of one seeded, stratified ordering of the training units, so
it is

* deterministic in (dataset, seed) and the fraction,
* nested: for one seed the 1% subset is inside the 5% subset, the 2-unit subset inside the
  4-unit one, and every count subset inside every larger fraction's,
* at least one unit, and
* stratified where units carry strata: the ordering interleaves the strata round-robin
  (largest stratum first), so every prefix spreads over the strata.

Only units of the ``train`` split are ever candidates.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from typing import Sequence

from ssl_bench.api import Unit, label_count
from ssl_bench.errors import SSLBenchError


def parse_label_fracs(text: str) -> list[float]:
    """``"0.01,0.05"`` -> ``[0.01, 0.05]``; each value must be a number in (0, 1]."""
    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = float(part)
        except ValueError:
            raise SSLBenchError(
                f"--label-frac: {part!r} is not a number; give fractions in (0, 1], "
                "e.g. --label-frac 0.01,0.05"
            ) from None
        if not 0.0 < value <= 1.0:
            raise SSLBenchError(
                f"--label-frac: {value:g} is outside (0, 1]; give fractions such as 0.01 (1%) "
                "or 1.0"
            )
        values.append(value)
    if not values:
        raise SSLBenchError("--label-frac: no value given; e.g. --label-frac 0.01")
    return values


def _seed(dataset_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{dataset_id}:{seed}".encode()).digest()[:8], "big")


def ordering(units: Sequence[Unit], dataset_id: str, seed: int) -> list[Unit]:
    """The seeded, stratified order of the training units; label subsets are its prefixes."""
    train = sorted((u for u in units if u.split == "train"), key=lambda u: u.id)
    rng = random.Random(_seed(dataset_id, seed))
    by_stratum: dict[tuple[str, ...], list[Unit]] = defaultdict(list)
    for unit in train:
        by_stratum[unit.strata].append(unit)
    groups = [by_stratum[k] for k in sorted(by_stratum)]
    for group in groups:
        rng.shuffle(group)
    rng.shuffle(groups)
    groups.sort(key=len, reverse=True)  # stable: ties keep the shuffled order
    order: list[Unit] = []
    for i in range(max((len(g) for g in groups), default=0)):
        order.extend(g[i] for g in groups if i < len(g))
    return order


def parse_label_counts(text: str) -> list[int]:
    """``"2,4,8"`` -> ``[2, 4, 8]``; each value must be a positive integer."""
    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = int(part)
        except ValueError:
            raise SSLBenchError(f"--label-count: {part!r} is not a whole number; give numbers "
                                "of labelled units, e.g. --label-count 2,4,8") from None
        if value < 1:
            raise SSLBenchError(f"--label-count: {value} is not positive; give at least 1 "
                                "labelled unit")
        values.append(value)
    if not values:
        raise SSLBenchError("--label-count: no value given; e.g. --label-count 2,4,8")
    return values


def select_label_units(units: Sequence[Unit], dataset_id: str, label_frac: float | None,
                       seed: int, count: int | None = None) -> list[Unit]:
    """The labelled training units for (dataset, fraction or count, seed): a prefix of one
    ordering, so fractions and counts of one seed are nested in each other."""
    order = ordering(units, dataset_id, seed)
    if not order:
        raise SSLBenchError(f"dataset {dataset_id!r} has no training units; check its layout "
                            "with `ssl-bench data check`")
    if count is not None:
        if count > len(order):
            raise SSLBenchError(f"label count {count} exceeds the {len(order)} training units "
                                f"of {dataset_id!r}; ask for at most {len(order)}")
        return order[:count]
    if label_frac is None:
        raise SSLBenchError("a label setting needs a fraction or a count")
    return order[: label_count(len(order), label_frac)]
