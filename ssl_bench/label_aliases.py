"""Copies of a computed record for label settings that selected the same labelled units.

A run computes each group of such settings once (:mod:`ssl_bench.engine.label_collapse`) and
lists the copies still to make in ``<results>/label-aliases.json``; :func:`write_label_aliases`
makes them after the cells. A copy is the computed record with the duplicate's label setting
and ``details["same_label_units_as"]`` naming the record it copies. Its cell identity is the
computed cell's (the identity holds the label subset, not the fraction), so a later run reuses
it like any record, and the leaderboard shows the settings as one column.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ssl_bench.records import read_record, write_record

#: the pending copies of a run, under its results folder
ALIASES_FILE = "label-aliases.json"


def write_label_aliases(results: Path) -> list[Path]:
    """Copy each pending source record (``<results>/label-aliases.json``) to its duplicate's
    path with the duplicate's label setting, then remove the file. A source that is missing or
    failed gets no copy (the next run plans its duplicates again). Returns the copies."""
    pending_file = Path(results) / ALIASES_FILE
    if not pending_file.exists():
        return []
    data: dict[str, Any] = json.loads(pending_file.read_text())
    written = []
    for alias in data.get("aliases", []):
        source = Path(results) / alias["source"]
        if not source.exists():
            continue
        record = read_record(source)
        if record.status == "failed":
            continue
        copy = record.model_copy(deep=True)
        count = alias.get("label_count")
        if count is not None:
            copy.label_count, copy.label_setting = int(count), "count"
        else:
            copy.label_frac, copy.label_setting = float(alias["label_frac"]), "frac"
        copy.details = {**copy.details, "same_label_units_as": alias["source"]}
        written.append(write_record(Path(results), copy))
    pending_file.unlink()
    return written


__all__ = ["ALIASES_FILE", "write_label_aliases"]
