"""Result records: one JSON file per cell (method x benchmark x label fraction x seed).

A record is validated (pydantic, ``extra="forbid"``) when written and when read; it is written
atomically, so a reader never sees half a record. Leaderboards are built from records only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ssl_bench import atomic
from ssl_bench.errors import RecordError

SCHEMA_VERSION = 1
Status = Literal["ok", "failed", "n/a"]


class Component(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    version: str
    plugin: str = ""


class DatasetRef(Component):
    fingerprint: str = ""
    options: dict[str, Any] = Field(default_factory=dict)


class TaskRef(Component):
    main_score: str
    higher_is_better: dict[str, bool]


class Timings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pretrain_s: float = 0.0
    pretrain_cached: bool = False
    features_s: float = 0.0
    downstream_s: float = 0.0
    total_s: float = 0.0


class CellRecord(BaseModel):
    """Everything needed to trust, reproduce and tabulate one cell."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    ssl_bench_version: str
    git_hash: str | None = None
    date: str
    benchmark: str
    method: Component
    method_kind: str
    dataset: DatasetRef
    task: TaskRef
    protocol: str
    profile: str
    label_frac: float
    seed: int
    cell_seed: int
    label_units: list[str] = Field(default_factory=list)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    main_score: float | None = None
    per_class: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    checkpoint: str = ""
    config_hash: str = ""
    method_config: dict[str, Any] = Field(default_factory=dict)
    task_config: dict[str, Any] = Field(default_factory=dict)
    timings: Timings = Field(default_factory=Timings)
    device: str = "cpu"
    synthetic: bool
    status: Status
    error: str | None = None
    traceback: str | None = None

    @property
    def key(self) -> tuple[str, str, float, int]:
        return (self.benchmark, self.method.id, self.label_frac, self.seed)


def _clean(value: Any) -> Any:
    """NaN / inf are not JSON: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def frac_label(label_frac: float) -> str:
    return f"{label_frac:g}"


def record_path(results: Path, benchmark: str, method: str, label_frac: float, seed: int) -> Path:
    return Path(results) / "records" / benchmark / method / f"lf{frac_label(label_frac)}-seed{seed}.json"


def write_record(results: Path, record: CellRecord) -> Path:
    data = _clean(record.model_dump(mode="json"))
    CellRecord.model_validate(data)  # what we write must read back
    path = record_path(results, record.benchmark, record.method.id, record.label_frac, record.seed)
    atomic.write_json(path, data)
    return path


def read_record(path: Path) -> CellRecord:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RecordError(f"record {path} is not readable JSON ({exc}); delete it and rerun "
                          "`ssl-bench run` to recompute that cell") from None
    try:
        return CellRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RecordError(
            f"record {path} does not match the record schema ({'.'.join(map(str, first['loc']))}: "
            f"{first['msg']}); delete it and rerun `ssl-bench run` to recompute that cell"
        ) from None


def iter_records(results: Path) -> tuple[list[CellRecord], list[str]]:
    """All valid records under ``results/records`` and one warning line per bad file."""
    records, warnings = [], []
    root = Path(results) / "records"
    if not root.exists():
        return records, warnings
    for path in sorted(root.rglob("*.json")):
        if path.name.startswith(".tmp-"):
            continue
        try:
            records.append(read_record(path))
        except RecordError as exc:
            warnings.append(str(exc))
    return records, warnings
