"""Result records: one JSON file per cell (method x benchmark x label fraction x seed).

A record is validated (pydantic, ``extra="forbid"``) when written and when read; it is written
atomically, so a reader never sees half a record. Leaderboards are built from records only.

Schema 2 adds what makes a record trustworthy on its own: its cell identity (everything that
can change the score; resume reuses a record only when it matches), the environment that made
it, each test unit's scores and the exact per-unit parts of the main score (for paired
statistics), the pretraining health of its encoder and the label count. Schema-1 records still
load (those fields empty); they are never reused by resume, since their identity is unknown.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ssl_bench import atomic
from ssl_bench.environment import Environment
from ssl_bench.errors import RecordError

SCHEMA_VERSION = 2
Status = Literal["ok", "failed", "n/a"]
#: where records replaced by a recomputation are moved (never overwritten in place)
SUPERSEDED = "superseded"


class Component(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    version: str
    plugin: str = ""
    #: schema 2, methods: the paper citation, its code/paper URL and the plugin's home page
    paper: str = ""
    url: str | None = None
    plugin_url: str | None = None


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


class MethodIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    version: str
    config_hash: str
    distribution: str
    distribution_version: str
    #: sha256 of the source files of the package that defines the method class
    source_hash: str
    #: the pretraining checkpoint's content address (or the init weights' id), "" if none
    checkpoint: str = ""
    #: the seed of the pretraining run (or of the built weights) the cell reads; None for a
    #: semi-supervised method and in records written before it was kept
    pretrain_seed: int | None = None


class TaskIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    version: str
    config_hash: str


class DatasetIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    version: str
    fingerprint: str
    options: dict[str, Any] = Field(default_factory=dict)


class CellIdentity(BaseModel):
    """Everything that can change a cell's score; resume reuses a record only when equal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    benchmark: str
    benchmark_version: str
    protocol: str
    method: MethodIdentity
    task: TaskIdentity
    dataset: DatasetIdentity
    profile: str
    #: sha256 of the labelled unit ids (the label subset)
    label_subset: str
    ssl_bench_version: str
    #: the run's ``--precision`` (:mod:`ssl_bench.precision`); identities written before it
    #: was kept ran in fp32, and read so
    precision: str = "fp32"

    def differences(self, new: "CellIdentity") -> list[str]:
        """Why a record with this identity cannot stand for ``new``, one phrase each."""
        out = []
        if self.profile != new.profile:
            out.append(f"profile {self.profile} -> {new.profile}")
        if self.precision != new.precision:
            out.append(f"precision {self.precision} -> {new.precision}")
        if self.ssl_bench_version != new.ssl_bench_version:
            out.append(f"ssl-bench {self.ssl_bench_version} -> {new.ssl_bench_version}")
        if (self.benchmark_version, self.protocol) != (new.benchmark_version, new.protocol):
            out.append("benchmark definition changed")
        out += _component_differences("method", self.method.model_dump(),
                                      new.method.model_dump())
        out += _component_differences("task", self.task.model_dump(), new.task.model_dump())
        out += _component_differences("dataset", self.dataset.model_dump(),
                                      new.dataset.model_dump())
        if self.label_subset != new.label_subset:
            out.append("label subset changed")
        return out


_FIELD_PHRASES = {"version": "version", "config_hash": "config", "distribution": "plugin",
                  "distribution_version": "plugin version", "source_hash": "plugin source code",
                  "checkpoint": "pretraining checkpoint",
                  "pretrain_seed": "pretraining seed", "fingerprint": "data on disk",
                  "options": "reader options", "id": "id"}


def _component_differences(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for key, phrase in _FIELD_PHRASES.items():
        if key in old and old[key] != new.get(key):
            if key in ("version", "distribution_version"):
                out.append(f"{kind} {phrase} {old[key]} -> {new[key]}")
            else:
                out.append(f"{kind} {phrase} changed")
    return out


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
    #: the run's ``--precision``; records written before it was kept ran in fp32
    precision: str = "fp32"
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
    # ---- schema 2
    label_count: int | None = None
    #: what the run asked for: "frac" (``label_frac``) or "count" (``label_count``)
    label_setting: Literal["frac", "count"] = "frac"
    identity: CellIdentity | None = None
    environment: Environment | None = None
    #: metric -> test unit id -> the metric on that unit alone
    per_unit: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    #: the exact per-unit decomposition of the main score (ssl_bench.unit_scores.UnitParts)
    main_parts: dict[str, Any] | None = None
    #: pretraining health of the encoder (ssl_bench.engine.health), None when not computed
    health: dict[str, Any] | None = None
    #: the benchmark's published reference results (ssl_bench.api.ReferenceResult as dicts),
    #: so leaderboards built from records alone can show them
    references: list[dict[str, Any]] = Field(default_factory=list)

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


def label_text(label_frac: float | None, label_count: int | None = None) -> str:
    """``lf0.01`` for a label fraction, ``lc4`` for a label count (the setting asked for)."""
    if label_count is not None:
        return f"lc{label_count}"
    if label_frac is None:
        raise ValueError("a label setting needs a fraction or a count")
    return f"lf{frac_label(label_frac)}"


def record_path(results: Path, benchmark: str, method: str, label_frac: float | None, seed: int,
                label_count: int | None = None) -> Path:
    name = f"{label_text(label_frac, label_count)}-seed{seed}.json"
    return Path(results) / "records" / benchmark / method / name


def write_record(results: Path, record: CellRecord) -> Path:
    """Write ``record`` atomically; a record already at its path is moved aside first
    (:func:`supersede`), never overwritten in place."""
    data = _clean(record.model_dump(mode="json"))
    CellRecord.model_validate(data)  # what we write must read back
    path = record_path(results, record.benchmark, record.method.id, record.label_frac, record.seed,
                       record.label_count if record.label_setting == "count" else None)
    if path.exists():
        supersede(results, path)
    atomic.write_json(path, data)
    return path


def supersede(results: Path, path: Path) -> Path:
    """Move the record at ``path`` to ``results/superseded/<UTC time>/...`` and return its new
    path (the leaderboard never reads it again)."""
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    relative = Path(path).relative_to(Path(results) / "records")
    target = Path(results) / SUPERSEDED / stamp / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    Path(path).replace(target)
    return target


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
    records: list[CellRecord] = []
    warnings: list[str] = []
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
