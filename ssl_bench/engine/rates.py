"""The measured rates of this machine, kept for the estimates of later runs
(:mod:`ssl_bench.engine.estimate`).

They live in ``rates.json`` in the user cache, or the file ``$SSL_BENCH_RATES`` names
(:func:`rates_path`), written atomically. Every ``ssl-bench run`` folds in what the records and
checkpoint sidecars of its results directory measured (:func:`learn_from_results`):

* seconds per cell, keyed by (benchmark, task, protocol, method, label setting, profile,
  device kind) (:class:`CellRate`);
* per pretraining, keyed by (method, profile, domain, device kind): seconds per step, steps,
  the config hash and pool fingerprint it ran with, the seconds spent outside the steps and
  the checkpoint's bytes (:class:`PretrainRate`);
* ``ssl-bench data prepare`` keeps each dataset's seconds per decoded frame.

A key measured again takes the new value. An unreadable file counts as empty: rates are a hint,
never a reason to stop.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

from ssl_bench import atomic

RATES_VERSION = 1
#: the fields that key a cell's rate
CELL_FIELDS = ("benchmark", "task", "protocol", "method", "label", "profile", "device")


def rates_path() -> Path:
    """Where the measured rates of this machine are kept: ``$SSL_BENCH_RATES``, else
    ``<user cache>/rates.json``."""
    import os

    from ssl_bench.paths import cache_dir

    return Path(os.environ.get("SSL_BENCH_RATES") or cache_dir() / "rates.json")


def device_kind(device: str) -> str:
    """``cpu`` or ``cuda`` (``cuda:1`` counts as ``cuda``)."""
    return device.split(":")[0]


# ---- stored rates ---------------------------------------------------------------------------


@dataclass
class CellRate:
    """Mean seconds of ``n`` cells with the same :data:`CELL_FIELDS`."""

    fields: dict[str, str]
    seconds: float
    n: int = 1


@dataclass
class PretrainRate:
    """One pretraining of (method, profile, domain, device kind): seconds per step, steps, the
    config hash and pool fingerprint it ran with, its checkpoint's bytes, and the seconds it
    spent outside its steps (loading the pool, health figures; ``wall_seconds`` of the
    checkpoint sidecar minus ``seconds``)."""

    method: str
    profile: str
    domain: str
    device: str
    seconds_per_step: float
    steps: int
    config: str = ""
    pool: str = ""
    checkpoint_bytes: int = 0
    overhead_s: float = 0.0

    @property
    def key(self) -> str:
        return pretrain_key(self.method, self.profile, self.domain, self.device)


def pretrain_key(method: str, profile: str, domain: str, device: str) -> str:
    return "|".join((method, profile, domain, device))


def cell_key(fields: Mapping[str, str]) -> str:
    return "|".join(str(fields[name]) for name in CELL_FIELDS)


@dataclass
class Rates:
    """The measured rates of one machine (:func:`rates_path`)."""

    cells: dict[str, CellRate] = field(default_factory=dict)
    pretraining: dict[str, PretrainRate] = field(default_factory=dict)
    #: dataset id -> seconds to decode one frame (one process)
    decode: dict[str, float] = field(default_factory=dict)

    def merged(self, newer: "Rates") -> "Rates":
        """These rates with ``newer``'s on top (a key measured again takes the new value)."""
        return Rates({**self.cells, **newer.cells}, {**self.pretraining, **newer.pretraining},
                     {**self.decode, **newer.decode})

    def to_json(self) -> dict[str, Any]:
        return {"version": RATES_VERSION,
                "cells": {k: asdict(v) for k, v in sorted(self.cells.items())},
                "pretraining": {k: asdict(v) for k, v in sorted(self.pretraining.items())},
                "decode": dict(sorted(self.decode.items()))}

    @classmethod
    def from_json(cls, data: Any) -> "Rates":
        """Rates from :meth:`to_json`; anything unreadable is left out (rates are a hint)."""
        rates = cls()
        if not isinstance(data, dict) or data.get("version") != RATES_VERSION:
            return rates
        for key, value in (data.get("cells") or {}).items():
            try:
                rates.cells[key] = CellRate(dict(value["fields"]), float(value["seconds"]),
                                            int(value.get("n", 1)))
            except (KeyError, TypeError, ValueError):
                continue
        for key, value in (data.get("pretraining") or {}).items():
            try:
                rates.pretraining[key] = PretrainRate(**value)
            except TypeError:
                continue
        for key, value in (data.get("decode") or {}).items():
            if isinstance(value, (int, float)) and value > 0:
                rates.decode[key] = float(value)
        return rates


def load_rates(path: Path | None = None) -> Rates:
    """The rates kept at ``path`` (default :func:`rates_path`); empty when missing or bad."""
    path = path or rates_path()
    try:
        return Rates.from_json(json.loads(path.read_text()))
    except (OSError, ValueError):
        return Rates()


def save_rates(rates: Rates, path: Path | None = None) -> None:
    atomic.write_json(path or rates_path(), rates.to_json())


def remember(learned: Rates, path: Path | None = None) -> None:
    """Fold ``learned`` into the kept rates (written atomically)."""
    save_rates(load_rates(path).merged(learned), path)


def remember_decode_rate(dataset_id: str, seconds_per_frame: float,
                         path: Path | None = None) -> None:
    """Keep ``data prepare``'s measured decode seconds per frame of a dataset."""
    if seconds_per_frame > 0 and math.isfinite(seconds_per_frame):
        remember(Rates(decode={dataset_id: seconds_per_frame}), path)


def learn_from_results(results: Path, domain_of: Callable[[str], str | None],
                       device_names: Collection[str] | None = None) -> Rates:
    """The rates measured by the completed cells of a results directory: each ok record's own
    seconds, and, through the checkpoint sidecars in the checkpoint store (under
    ``results/cache``), seconds per pretraining step. ``domain_of(dataset id)`` names a
    dataset's domain (None: unknown, its pretraining is skipped). With
    ``device_names`` (this machine's CPU and GPU names), records made on another machine (a
    results folder copied here) are left out."""
    from ssl_bench.engine.checkpoint_store import CheckpointStore, read_sidecar
    from ssl_bench.engine.pretrain import config_hash
    from ssl_bench.records import iter_records

    store = CheckpointStore(Path(results) / "cache")
    records, _warnings = iter_records(results)
    sums: dict[str, list[Any]] = {}
    rates = Rates()
    for record in records:
        if record.status != "ok":
            continue
        if device_names is not None and (record.environment is None
                                         or record.environment.device_name not in device_names):
            continue
        # total_s is the cell alone: its pretraining ran before the cells (pretrain_s is that
        # pretraining's own time, kept for information)
        seconds = record.timings.total_s
        label = (f"n{record.label_count}" if record.label_setting == "count"
                 else f"{record.label_frac:g}")
        fields = {"benchmark": record.benchmark, "task": record.task.id,
                  "protocol": record.protocol, "method": record.method.id, "label": label,
                  "profile": record.profile, "device": device_kind(record.device)}
        if seconds > 0:
            entry = sums.setdefault(cell_key(fields), [fields, 0.0, 0])
            entry[1] += seconds
            entry[2] += 1
        checkpoint = record.checkpoint
        domain = domain_of(record.dataset.id)
        if not checkpoint or checkpoint.startswith("init-") or domain is None:
            continue
        ckpt = store.path(record.method.id, checkpoint)
        sidecar = read_sidecar(ckpt)
        steps, spent = sidecar.get("steps"), sidecar.get("seconds")
        if not (isinstance(steps, int) and steps > 0 and isinstance(spent, (int, float))
                and spent > 0):
            continue
        wall = sidecar.get("wall_seconds")
        overhead = float(wall) - float(spent) if isinstance(wall, (int, float)) else 0.0
        rate = PretrainRate(record.method.id, record.profile, domain, fields["device"],
                            float(spent) / steps, steps, config_hash(sidecar.get("config")),
                            str(sidecar.get("pool", "")),
                            ckpt.stat().st_size if ckpt.exists() else 0, max(0.0, overhead))
        rates.pretraining[rate.key] = rate
    for key, (fields, total, n) in sums.items():
        rates.cells[key] = CellRate(fields, total / n, n)
    return rates


__all__ = ["CELL_FIELDS", "CellRate", "PretrainRate", "RATES_VERSION", "Rates", "cell_key",
           "device_kind", "learn_from_results", "load_rates", "pretrain_key", "rates_path",
           "remember", "remember_decode_rate", "save_rates"]
