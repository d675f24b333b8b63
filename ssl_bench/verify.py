"""Verification by re-running: draw cells from a bundle, compute them again here, and compare
each main score with the one the bundle claims.

The bundle is checked first (:func:`ssl_bench.bundle.read_bundle`; nothing is unpacked). The
cells are drawn from its scored records with a seeded generator (``--seed``), so two people
verifying one bundle with one seed re-run the same cells. Each drawn cell is computed by an
ordinary ``ssl-bench run`` of that method, benchmark, label setting, seed and profile into a
work folder, on the local data (``--data-root``; the synthetic suite for synthetic records),
as the bundle's run computed it:

- with the bundle's other benchmarks of that profile as ``--pool-with``: a pretraining pool
  holds the train units of every dataset of its domain in the run, less the recordings held
  out by any benchmark of the run, so a re-run of one benchmark alone would pretrain on
  another pool (another checkpoint key: ``not comparable``);
- with the record's torch thread count (``ssl-bench run --jobs N`` gives each worker
  ``cores // N`` threads; the re-run is one process): the thread count changes the last bits
  of the sums, and training amplifies them into other scores.

When the bundle carries the weights of a drawn cell's checkpoint (``ssl-bench export
--with-checkpoints``), they are placed with their sidecar in the work folder's checkpoint store
first, so the re-run reads them when its own checkpoint key is the record's (the same method
config, pretraining data and seed) and only the downstream part is computed again; otherwise
the pretraining runs again.

The verdict of a cell:

- ``not comparable``: the re-run's cell identity differs from the record's (another method or
  task config, plugin version or source, data on disk, label subset, ssl-bench version): the
  scores are not about the same computation, and the line names what differs;
- ``match``: the identities are equal and, where the environment (library versions, device,
  precision) is the same too, the scores are equal (within 1e-6); where the environment
  differs, within ``--tolerance`` (absolute, in the metric's units), else within the
  tolerance the cell's task declares (:attr:`ssl_bench.meta.TaskMeta.verify_tolerance`);
- ``mismatch``: otherwise, including an environment that differs with no tolerance.

Anything but ``match`` makes ``ssl-bench verify`` exit non-zero.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ssl_bench.bundle import Bundle, check_member_name, extract_weights, read_bundle
from ssl_bench.errors import SSLBenchError
from ssl_bench.records import CellRecord, read_record, record_path

#: scores of one computation in one environment must agree to this (float formatting only)
EXACT = 1e-6
VERIFICATION_FORMAT = "ssl-bench-verification"


@dataclass(frozen=True)
class Verdict:
    cell: str
    claimed: float
    rerun: float | None
    verdict: str  # match | mismatch | not comparable
    why: str

    @property
    def delta(self) -> float | None:
        return None if self.rerun is None else self.rerun - self.claimed


def cell_name(r: CellRecord) -> str:
    setting = (f"{r.label_count} units" if r.label_setting == "count"
               else f"{r.label_frac * 100:g}%")
    return f"{r.benchmark}/{r.method.id} {setting} seed {r.seed}"


def draw(records: list[CellRecord], sample: int, seed: int) -> list[CellRecord]:
    """``sample`` scored records drawn without replacement with ``random.Random(seed)`` from
    the records sorted by cell (all when there are fewer)."""
    scored = sorted((r for r in records if r.status == "ok" and r.main_score is not None),
                    key=lambda r: (r.benchmark, r.method.id, r.label_setting,
                                   r.label_count or 0, r.label_frac, r.seed))
    if not scored:
        raise SSLBenchError("the bundle has no scored records to verify")
    return random.Random(seed).sample(scored, min(sample, len(scored)))


def run_args(r: CellRecord, work: Path, data_root: Path | None, synthetic_size: str,
             pool_with: list[str] | None = None) -> list[str]:
    """The ``ssl-bench run`` arguments that compute ``r``'s cell again into ``work``;
    ``pool_with``: the other benchmarks of the run that made it (their datasets shape the
    pretraining pools)."""
    setting = (["--label-count", str(r.label_count)] if r.label_setting == "count"
               else ["--label-frac", f"{r.label_frac:g}"])
    args = ["run", "--methods", r.method.id, "--benchmarks", r.benchmark, *setting,
            "--seeds", str(r.seed), "--profile", r.profile, "--results", str(work),
            "--jobs", "1", "--quiet", "--synthetic-size", synthetic_size]
    pretrain_seed = r.identity.method.pretrain_seed if r.identity else None
    if pretrain_seed is not None and pretrain_seed != r.seed:
        args += ["--pretraining", "shared"]
    elif pretrain_seed is not None:
        args += ["--pretraining", "per-seed"]
    if data_root is not None and not r.synthetic:
        args += ["--data-root", str(data_root)]
    others = sorted(set(pool_with or []) - {r.benchmark})
    if others:
        args += ["--pool-with", ",".join(others)]
    return args


def run_benchmarks(records: list[CellRecord], r: CellRecord) -> list[str]:
    """The benchmarks of the bundle's records made like ``r`` (same profile, synthetic or
    not): the run's benchmark set, which its pretraining pools depend on."""
    return sorted({x.benchmark for x in records
                   if x.profile == r.profile and x.synthetic == r.synthetic})


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the body with ``threads`` torch threads (unchanged when None or 0), then restore."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def judge(claimed: CellRecord, rerun: CellRecord | None, tolerance: float | None,
          tolerance_source: str = "") -> Verdict:
    """The verdict on one cell (see the module docstring); ``tolerance_source`` follows the
    tolerance in the verdict line (where it comes from)."""
    name = cell_name(claimed)
    score = float(claimed.main_score or 0.0)
    if rerun is None or rerun.status != "ok" or rerun.main_score is None:
        why = rerun.error if rerun is not None and rerun.error else "the re-run gave no score"
        return Verdict(name, score, None, "mismatch", why or "")
    again = float(rerun.main_score)
    if claimed.identity is None or rerun.identity is None:
        return Verdict(name, score, again, "not comparable", "no cell identity recorded")
    differences = claimed.identity.differences(rerun.identity)
    if differences:
        return Verdict(name, score, again, "not comparable", "; ".join(differences))
    same_env = (claimed.environment is not None and rerun.environment is not None
                and claimed.environment.key() == rerun.environment.key())
    if same_env:
        ok = abs(again - score) <= EXACT
        return Verdict(name, score, again, "match" if ok else "mismatch",
                       "same environment: must be equal")
    if tolerance is None:
        return Verdict(name, score, again, "mismatch" if abs(again - score) > EXACT else "match",
                       "environment differs and neither --tolerance nor the task gives a "
                       "tolerance: must be equal")
    ok = abs(again - score) <= tolerance
    return Verdict(name, score, again, "match" if ok else "mismatch",
                   f"environment differs: within {tolerance:g}{tolerance_source}")


def verify_bundle(bundle: Path, sample: int, seed: int, work: Path,
                  rerun: Callable[[list[str]], None], data_root: Path | None = None,
                  synthetic_size: str = "default", tolerance: float | None = None
                  ) -> list[Verdict]:
    """Re-run ``sample`` cells drawn from ``bundle`` into ``work`` and judge each;
    ``rerun(args)`` runs ``ssl-bench run`` with ``args`` (:func:`run_args` without the
    leading ``run``; the command layer passes the run command itself)."""
    from ssl_bench.plugins import get_registries

    checked = read_bundle(bundle)
    regs = get_registries()
    verdicts = []
    drawn = draw(checked.records, sample, seed)
    with_weights = place_checkpoints(bundle, checked, drawn, work)
    for r in drawn:
        if r.method.id not in regs.methods or r.task.id not in regs.tasks:
            verdicts.append(Verdict(cell_name(r), float(r.main_score or 0.0), None,
                                    "not comparable", "its method or task is not installed "
                                    "here"))
            continue
        pool_with = [b for b in run_benchmarks(checked.records, r) if b in regs.benchmarks]
        threads = r.environment.threads if r.environment is not None else None
        try:
            with torch_threads(threads):
                rerun(run_args(r, work, data_root, synthetic_size, pool_with)[1:])
        except SystemExit:
            pass  # a failed cell has a record saying why
        path = record_path(work, r.benchmark, r.method.id, r.label_frac, r.seed,
                           r.label_count if r.label_setting == "count" else None)
        declared = regs.tasks.get(r.task.id).meta.verify_tolerance
        verdict = judge(r, read_record(path) if path.exists() else None,
                        tolerance if tolerance is not None else declared,
                        "" if tolerance is not None or declared is None else
                        f" (the tolerance {r.task.id} declares)")
        how = ("the bundle's checkpoint" if checkpoint_of(r) in with_weights
               else "pretraining re-run")
        verdicts.append(Verdict(verdict.cell, verdict.claimed, verdict.rerun, verdict.verdict,
                                f"{verdict.why}; {how}"))
    return verdicts


def checkpoint_of(r: CellRecord) -> str:
    return r.identity.method.checkpoint if r.identity else r.checkpoint


def place_checkpoints(path: Path, bundle: Bundle, records: list[CellRecord], work: Path
                      ) -> set[str]:
    """Put the weights and sidecar of each of ``records``' checkpoints that the bundle carries
    into ``work``'s checkpoint store; returns their keys."""
    from ssl_bench.engine.checkpoint_store import CheckpointStore, sidecar_path

    store = CheckpointStore(work / "cache")
    names: dict[str, Path] = {}
    sidecars: dict[str, str] = {}
    placed = set()
    for r in records:
        key = checkpoint_of(r)
        # the key comes from a stranger's record: only a plain name (no `/`, no `..`) may
        # become a path, else the weights would land outside ``work``
        if not key or check_member_name(f"checkpoints/{r.method.id}/{key}"):
            continue
        target = store.path(r.method.id, key)
        weights = f"checkpoints/{r.method.id}/{target.name}"  # as export names them
        sidecar = f"checkpoints/{r.method.id}/{sidecar_path(target).name}"
        if weights not in bundle.weights or sidecar not in bundle.small:
            continue
        if target.exists() or weights in names:
            placed.add(key)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        names[weights] = target
        sidecars[weights] = sidecar
        placed.add(key)
    if names:
        extract_weights(path, bundle, sorted(names), names.__getitem__)
        for weights, target in names.items():
            sidecar_path(target).write_bytes(bundle.small[sidecars[weights]])
    return placed


def verification_record(path: Path, verdicts: list[Verdict], sample: int, seed: int
                        ) -> dict[str, Any]:
    """What ``ssl-bench verify --record`` writes: the bundle's manifest hash, the draw, the
    environment of the re-runs and, per cell, the record's member name and SHA-256 in the
    bundle with the verdict; ``passed`` when every cell matched. ``ssl-bench export
    --verification`` puts it into a bundle, and a board shows the rows it verified."""
    from ssl_bench.bundle import read_bundle
    from ssl_bench.environment import current_environment

    checked = read_bundle(path)
    members = checked.manifest["members"]
    cells = []
    for v, r in zip(verdicts, draw(checked.records, sample, seed)):
        name = record_path(Path("."), r.benchmark, r.method.id, r.label_frac, r.seed,
                           r.label_count if r.label_setting == "count" else None).as_posix()
        cells.append({"record": name, "sha256": members.get(name, {}).get("sha256"),
                      "claimed": v.claimed, "rerun": v.rerun, "verdict": v.verdict,
                      "why": v.why})
    return {"format": VERIFICATION_FORMAT, "sample": sample, "seed": seed,
            "environment": current_environment().summary(),
            "passed": all(v.verdict == "match" for v in verdicts), "cells": cells}


def verified_records(bundle: Bundle) -> set[str]:
    """The record members of ``bundle`` that a passed verification in it re-ran with a
    ``match``, and whose SHA-256 is still the one it verified."""
    import json

    members = bundle.manifest["members"]
    verified = set()
    for name, data in bundle.small.items():
        if not name.startswith("verification/"):
            continue
        try:
            record = json.loads(data)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("format") != VERIFICATION_FORMAT \
                or record.get("passed") is not True:
            continue
        for cell in record.get("cells", []):
            member = cell.get("record") if isinstance(cell, dict) else None
            if (isinstance(member, str) and cell.get("verdict") == "match"
                    and members.get(member, {}).get("sha256") == cell.get("sha256")):
                verified.add(member)
    return verified


def verdict_table(verdicts: list[Verdict]) -> str:
    """The verdicts as a markdown table: cell, claimed, re-run, Δ, verdict (and why)."""
    lines = ["| cell | claimed | re-run | Δ | verdict |", "|---|---|---|---|---|"]
    for v in verdicts:
        rerun = "–" if v.rerun is None else f"{v.rerun:.4f}"
        delta = "–" if v.delta is None else f"{v.delta:+.4f}"
        lines.append(f"| {v.cell} | {v.claimed:.4f} | {rerun} | {delta} | {v.verdict} "
                     f"({v.why}) |")
    return "\n".join(lines)


__all__ = ["EXACT", "VERIFICATION_FORMAT", "Verdict", "cell_name", "checkpoint_of", "draw",
           "judge", "place_checkpoints", "run_args", "verdict_table", "verification_record",
           "verified_records", "verify_bundle"]
