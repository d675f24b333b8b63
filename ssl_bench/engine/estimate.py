"""What a run will cost: per stage its cells, pretraining runs, frames to decode, cache disk and
seconds (``ssl-bench run --dry-run``), item by item (each item of the plan,
:mod:`ssl_bench.engine.work`, gets its :class:`~ssl_bench.engine.cost.ItemCost`) for the live
ETA (:mod:`ssl_bench.engine.eta`).

Every time comes from a rate and says which kind (:class:`~ssl_bench.engine.cost.Estimate`
``quality``):

* ``measured``: kept from earlier runs on this machine (:mod:`ssl_bench.engine.rates`) for
  exactly this item's key;
* ``related``: measured for a neighbouring key (another label setting, other methods, other
  benchmarks of the same task, other benchmarks; :data:`CELL_LEVELS`) of the same profile and
  device kind, by earlier runs or, live, by the items this run has finished;
* ``guess``: nothing measured at all; a conservative default (``GUESS_*`` below), labelled a
  guess wherever it is shown.

A pretraining's steps are measured (an earlier run of the same config and pool), else planned
as the pretraining counts them (:func:`ssl_bench.engine.cost.planned_steps`: epochs times the
pool's frames over the batch, capped by ``max_steps``) from the frames the readers count
without decoding (:meth:`ssl_bench.api.Dataset.frame_count`), else the config's ``max_steps``,
else a guess (:data:`GUESS_STEPS`).

Frames to decode come from :meth:`ssl_bench.api.Dataset.prepare_cost` (readers that count their
frames, e.g. the video readers from the container headers; the others count as unknown). Cache
disk: the frames kept at each (size, fps) not cached yet, at size x size x 3 bytes, plus the
checkpoint sizes measured earlier. Decoding happens on the first use of a unit (the pretraining
pool, then the first cell of its data), so its time is added to that item.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ssl_bench.engine.cost import (
    Estimate,
    ItemCost,
    ItemKey,
    PretrainSpec,
    Quality,
    planned_steps,
)
from ssl_bench.engine.rates import CellRate, Rates, device_kind, pretrain_key, rates_path

if TYPE_CHECKING:
    from ssl_bench.api import Dataset, Unit
    from ssl_bench.engine.context import SweepContext
    from ssl_bench.engine.plan import Cell
    from ssl_bench.engine.work import PretrainItem, WorkPlan

#: seconds of one cell when nothing is measured (by profile): a conservative guess
GUESS_CELL_S: dict[str, float] = {"smoke": 10.0, "cpu": 120.0, "paper": 1800.0}
#: seconds of one pretraining step when nothing is measured (by profile): a guess
GUESS_STEP_S: dict[str, float] = {"smoke": 0.5, "cpu": 1.0, "paper": 2.0}
#: pretraining steps when neither a measure nor the config's ``max_steps`` says
GUESS_STEPS = 1000
#: seconds to decode and resize one video frame when no ``data prepare`` measured it
GUESS_DECODE_S = 0.004

#: the keys a cell's rate is looked up by, finest first, with what each fallback means
CELL_LEVELS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("benchmark", "method", "label", "profile", "device"), "measured"),
    (("benchmark", "method", "profile", "device"), "another label setting"),
    (("benchmark", "profile", "device"), "other methods"),
    (("task", "protocol", "profile", "device"), "other benchmarks of the task"),
    (("profile", "device"), "other benchmarks"),
)


# ---- single items ----------------------------------------------------------------


class CellRateIndex:
    """Mean cell seconds at every level of :data:`CELL_LEVELS` (sums, for O(1) lookups)."""

    def __init__(self, rates: Iterable[CellRate] = ()) -> None:
        self.sums: list[dict[tuple[str, ...], list[float]]] = [
            defaultdict(lambda: [0.0, 0.0]) for _ in CELL_LEVELS]
        for rate in rates:
            self.add(rate.fields, rate.seconds, rate.n)

    def add(self, fields: Mapping[str, str], seconds: float, n: int = 1) -> None:
        for level, (names, _basis) in enumerate(CELL_LEVELS):
            entry = self.sums[level][tuple(str(fields.get(k, "")) for k in names)]
            entry[0] += seconds * n
            entry[1] += n

    def mean(self, level: int, fields: Mapping[str, str]) -> float | None:
        names = CELL_LEVELS[level][0]
        entry = self.sums[level].get(tuple(str(fields.get(k, "")) for k in names))
        return entry[0] / entry[1] if entry and entry[1] else None


class Estimator:
    """Looks items up in the stored rates and in what this run has measured so far."""

    def __init__(self, rates: Rates) -> None:
        self.rates = rates
        self.stored_cells = CellRateIndex(rates.cells.values())
        self.run_cells = CellRateIndex()
        #: (method, profile, domain, device) -> seconds per step measured by this run
        self.run_steps: dict[tuple[str, str, str, str], float] = {}

    def cell(self, fields: Mapping[str, str]) -> Estimate:
        for level, (_names, basis) in enumerate(CELL_LEVELS):
            for index, from_run in ((self.stored_cells, False), (self.run_cells, True)):
                seconds = index.mean(level, fields)
                if seconds is not None:
                    where = "this run" if from_run else "earlier runs"
                    text = (f"measured ({where})" if level == 0
                            else f"measured for {basis} ({where})")
                    return Estimate(seconds, "measured" if level == 0 else "related", text,
                                    from_run)
        profile = fields.get("profile", "cpu")
        return Estimate(GUESS_CELL_S.get(profile, GUESS_CELL_S["cpu"]), "guess",
                        "a guess: no cell measured yet")

    def task_timed(self, fields: Mapping[str, str]) -> bool:
        """Whether a cell of the task and protocol of ``fields`` (same profile and device) has
        been timed, by earlier runs or this one: the cell's estimate then rests on cells of its
        own task (a level of :data:`CELL_LEVELS` down to ``other benchmarks of the task``), not
        on a guess or on other tasks' cells."""
        task_levels = range(len(CELL_LEVELS) - 1)
        return any(index.mean(level, fields) is not None for level in task_levels
                   for index in (self.stored_cells, self.run_cells))

    def learn_cell(self, fields: Mapping[str, str], seconds: float) -> None:
        self.run_cells.add(fields, seconds)

    def learn_pretraining(self, spec: PretrainSpec, seconds_per_step: float) -> None:
        self.run_steps[(spec.method, spec.profile, spec.domain, spec.device)] = seconds_per_step

    def steps(self, spec: PretrainSpec) -> tuple[int, Quality, str]:
        stored = self.rates.pretraining.get(
            pretrain_key(spec.method, spec.profile, spec.domain, spec.device))
        if stored is not None and (stored.config, stored.pool) == (spec.config, spec.pool):
            return stored.steps, "measured", "steps measured"
        if spec.pool_frames is not None:
            steps = planned_steps(spec.epochs, spec.batch_size, spec.max_steps, spec.pool_frames)
            capped = (f", capped by max_steps {spec.max_steps}"
                      if spec.max_steps is not None and steps == spec.max_steps else "")
            return steps, "measured", (
                f"steps: {spec.epochs} epoch(s) of {spec.pool_frames:,} pool frames at batch "
                f"{spec.batch_size}{capped}")
        if spec.max_steps is not None:
            return spec.max_steps, "measured", "steps: the config's max_steps"
        if stored is not None:
            return stored.steps, "related", "steps measured on an earlier pool or config"
        if not spec.pool:
            return GUESS_STEPS, "guess", (f"steps guessed ({GUESS_STEPS}): the pool's frames are "
                                          "counted once its data folders exist (the synthetic "
                                          "suite: `ssl-bench data synth`)")
        return GUESS_STEPS, "guess", (f"steps guessed ({GUESS_STEPS}): a reader of the pool does "
                                      "not count its frames (Dataset.frame_count)")

    def step_seconds(self, spec: PretrainSpec) -> Estimate:
        same = (spec.method, spec.profile, spec.domain, spec.device)
        if same in self.run_steps:
            return Estimate(self.run_steps[same], "measured", "measured (this run)", True)
        stored = self.rates.pretraining.get(pretrain_key(*same))
        if stored is not None:
            return Estimate(stored.seconds_per_step, "measured", "measured (earlier runs)")
        for from_run, pool in ((True, [(k, v) for k, v in self.run_steps.items()]),
                               (False, [((r.method, r.profile, r.domain, r.device),
                                         r.seconds_per_step)
                                        for r in self.rates.pretraining.values()])):
            where = "this run" if from_run else "earlier runs"
            for match, basis in ((lambda k: k[0] == spec.method, "another domain"),
                                 (lambda k: True, "other methods")):
                values = [v for k, v in pool if k[1] == spec.profile and k[3] == spec.device
                          and match(k)]
                if values:
                    return Estimate(sum(values) / len(values), "related",
                                    f"measured for {basis} ({where})", from_run)
        return Estimate(GUESS_STEP_S.get(spec.profile, GUESS_STEP_S["cpu"]), "guess",
                        "a guess: no pretraining step measured yet")

    def pretraining(self, spec: PretrainSpec) -> tuple[Estimate, int]:
        """The estimate of a whole pretraining (its steps, plus what it spent outside them
        when measured) and its steps."""
        steps, steps_quality, steps_basis = self.steps(spec)
        per_step = self.step_seconds(spec)
        stored = self.rates.pretraining.get(
            pretrain_key(spec.method, spec.profile, spec.domain, spec.device))
        overhead = stored.overhead_s if stored is not None else 0.0
        order: list[Quality] = ["measured", "related", "guess"]
        quality = max(steps_quality, per_step.quality, key=order.index)
        return (Estimate(steps * per_step.seconds + overhead, quality,
                         f"{per_step.basis}; {steps_basis}", per_step.from_run), steps)

    def decode_seconds(self, dataset_id: str) -> Estimate:
        if dataset_id in self.rates.decode:
            return Estimate(self.rates.decode[dataset_id], "measured",
                            "measured by `ssl-bench data prepare`")
        return Estimate(GUESS_DECODE_S, "guess",
                        f"a guess: {GUESS_DECODE_S * 1000:g} ms/frame (no `data prepare` "
                        "measured it)")


# ---- the plan's work ------------------------------------------------------------------------


@dataclass
class StageSummary:
    """One line of the ``--dry-run`` estimate."""

    name: str
    cells: int = 0
    pretraining_runs: int = 0
    cached_runs: int = 0
    steps: int = 0
    units: int = 0
    #: None: not known (a reader that does not count its frames, data not written yet)
    frames: int | None = 0
    disk_bytes: int | None = 0
    seconds: float = 0.0
    #: how many items' times rest on each rate quality
    qualities: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class DataWork:
    """Decoding ahead of a run, per dataset: units to decode, frames (None: the reader states
    none), cache bytes, and which part falls to the pretraining pools."""

    dataset: str
    domain: str
    units: int = 0
    frames: int | None = 0
    disk_bytes: int | None = 0
    pool_frames: int = 0
    #: data key -> frames first decoded by a cell of that data
    cell_frames: dict[str, int] = field(default_factory=dict)
    note: str = ""


@dataclass
class RunEstimate:
    """The estimate of a run: each item's cost (pretrainings not cached, then the cells, in the
    plan's order), the ``--dry-run`` stages and the estimator the live ETA keeps refining."""

    costs: dict[ItemKey, ItemCost]
    stages: list[StageSummary]
    estimator: Estimator
    jobs: int = 1

    @property
    def seconds(self) -> float:
        """The whole run: pretrainings and cells spread over ``jobs`` processes."""
        return spread([c.seconds for c in self.costs.values()], self.jobs)


def spread(seconds: list[float], jobs: int) -> float:
    """Wall seconds of items of these ``seconds`` over ``jobs`` processes: their sum shared
    out, and never less than the longest item (list scheduling lies within a longest item of
    this; a cell waits for its pretraining, which the bound ignores)."""
    work = [s for s in seconds if s > 0]
    if not work:
        return 0.0
    return max(sum(work) / max(1, min(jobs, len(work))), max(work))


def _kept_frames(frames: int, native_fps: float | None, fps: float) -> int | None:
    if native_fps is None or native_fps <= 0:
        return None
    return math.ceil(frames * min(1.0, fps / native_fps))


def states_costs(dataset: "Dataset") -> bool:
    """Whether the reader counts its work (:meth:`~ssl_bench.api.Dataset.prepare_cost`)."""
    from ssl_bench.api import Dataset

    return type(dataset).prepare_cost is not Dataset.prepare_cost


def _unit_work(dataset: "Dataset", unit: "Unit", variants: list[tuple[int, float]]
               ) -> tuple[int, int | None]:
    """(frames to decode, cache bytes) of one unit for ``variants``."""
    frames = dataset.prepare_cost(unit, variants)
    if frames == 0:
        return 0, 0
    disk: int | None = 0
    for size, fps in variants:
        missing = dataset.prepare_cost(unit, [(size, fps)])
        kept = _kept_frames(missing, dataset.meta.fps, fps) if missing else 0
        if kept is None:
            disk = None
            break
        disk = (disk or 0) + kept * (size * size * 3 + 8)  # frames + their int64 ids
    return frames, disk


def task_fps(task: Any) -> float | None:
    """The extra frame rate a task reads besides 1 fps: its config's ``feature_fps`` field when
    it has one (the convention of the built-in phase task), else None."""
    value = getattr(getattr(task, "config", None), "feature_fps", None)
    return float(value) if isinstance(value, (int, float)) and value != 1.0 else None


def data_work(ctx: "SweepContext", cells: list["Cell"], pretrainings: list[PretrainSpec]
              ) -> list[DataWork]:
    """Frames to decode and cache bytes, per dataset, for the cells and pretrainings of a run
    (datasets whose folder is not there yet are left out)."""
    from ssl_bench.engine.identity import label_units_for, task_for
    from ssl_bench.engine.plan import data_ready
    from ssl_bench.profiles import IMAGE_SIZE

    size = IMAGE_SIZE[ctx.options.profile]
    # (dataset id, unit id) -> [dataset, unit, variants, in a pool, first data key]
    needs: dict[tuple[str, str], list[Any]] = {}

    def need(ds: "Dataset", unit: "Unit", variant: tuple[int, float], pool: bool,
             key: str) -> None:
        entry = needs.setdefault((ds.meta.id, unit.id), [ds, unit, [], False, key])
        if variant not in entry[2]:
            entry[2].append(variant)
        entry[3] = entry[3] or pool

    methods = {spec.method: ctx.method(spec.method) for spec in pretrainings}
    for spec in pretrainings:
        if not spec.pool:  # the data is not there yet
            continue
        cfg = methods[spec.method].config
        for part in ctx.pool_units(spec.domain):
            for unit in part.kept:
                need(part.dataset, unit, (cfg.image_size, float(cfg.fps)), True, part.key)
    not_there: set[str] = set()
    for cell in cells:
        bench = ctx.regs.benchmarks.get(cell.benchmark)
        if not cell.applicable:
            continue
        if not data_ready(ctx.sources, [bench.dataset]):
            not_there.add(bench.dataset)
            continue
        key = ctx.data_key(cell.benchmark)
        ds = ctx.dataset(key)
        variants = [(size, 1.0)]
        extra = task_fps(task_for(ctx, cell))
        if extra is not None:
            variants.append((size, extra))
        units = [u for u in ctx.units[key] if u.split != "train"] + label_units_for(ctx, cell)
        for unit in units:
            for variant in variants:
                need(ds, unit, variant, False, key)
    out: dict[str, DataWork] = {}
    for ds, unit, variants, pool, key in needs.values():
        work = out.setdefault(ds.meta.id, DataWork(ds.meta.id, ds.meta.domain))
        work.units += 1
        if not states_costs(ds):
            work.frames = work.disk_bytes = None
            work.note = "the reader does not count its frames"
            continue
        frames, disk = _unit_work(ds, unit, variants)
        if frames == 0:
            work.units -= 1  # cached already
            continue
        if work.frames is not None:
            work.frames += frames
        work.disk_bytes = None if disk is None or work.disk_bytes is None \
            else work.disk_bytes + disk
        if pool:
            work.pool_frames += frames
        else:
            work.cell_frames[key] = work.cell_frames.get(key, 0) + frames
    for dataset_id in sorted(not_there - set(out)):
        out[dataset_id] = DataWork(dataset_id, ctx.regs.datasets.get(dataset_id).meta.domain,
                                   frames=None, disk_bytes=None,
                                   note="its folder is not there yet (a run writes the "
                                        "synthetic suite before it starts)")
    return list(out.values())


def needed_pretrainings(plan: "WorkPlan") -> list[tuple["PretrainItem", PretrainSpec]]:
    """The plan's pretraining runs that are not cached, each with what decides its cost."""
    from ssl_bench.engine.pretrain import config_hash

    ctx = plan.ctx
    needed: list[tuple[PretrainItem, PretrainSpec]] = []
    for item in plan.to_pretrain:
        run = item.run
        method = ctx.method(run.method, run.seed)
        cfg = method.config
        pool, frames = "", None  # unknown until the data is there
        if item.checkpoint is not None:
            pool = ctx.pool_fingerprint(run.domain, cfg.image_size, cfg.fps)
            frames = ctx.pool_frame_count(run.domain, cfg.fps)
        needed.append((item, PretrainSpec(run.method, run.domain, plan.options.profile,
                                          device_kind(plan.options.device),
                                          config_hash(cfg.model_dump(mode="json")),
                                          pool, cfg.max_steps, cfg.epochs, cfg.batch_size,
                                          frames)))
    return needed


def estimate_run(plan: "WorkPlan", rates: Rates) -> RunEstimate:
    """The estimate of a planned run's work left, item by item (each item's ``cost`` is set)
    and per stage."""
    ctx, options = plan.ctx, plan.options
    estimator = Estimator(rates)
    needed = needed_pretrainings(plan)
    costs: dict[ItemKey, ItemCost] = {}
    pre = StageSummary("pretraining", cached_runs=len(plan.pretrainings) - len(needed))
    for pretraining, spec in needed:
        estimate, steps = estimator.pretraining(spec)
        pretraining.cost = costs[("pretrain", pretraining.key)] = ItemCost(
            "pretraining", estimate, spec=spec, steps=steps)
        pre.pretraining_runs += 1
        pre.steps += steps
        stored = rates.pretraining.get(pretrain_key(spec.method, spec.profile, spec.domain,
                                                    spec.device))
        if stored is None or not stored.checkpoint_bytes:
            pre.disk_bytes = None
        elif pre.disk_bytes is not None:
            pre.disk_bytes += stored.checkpoint_bytes
    device = device_kind(options.device)
    tasks: dict[str, StageSummary] = {}
    first_cell: dict[str, ItemCost] = {}
    for item in plan.cells:
        cell = item.cell
        bench = ctx.regs.benchmarks.get(cell.benchmark)
        fields = {"benchmark": cell.benchmark, "task": bench.task, "protocol": bench.protocol,
                  "method": cell.method, "label": cell.label, "profile": options.profile,
                  "device": device}
        if cell.applicable:
            cost = ItemCost(bench.task, estimator.cell(fields), fields)
        else:  # recorded as n/a at once; no rate key, nothing to learn
            cost = ItemCost(bench.task, Estimate(0.0, "measured", "n/a: nothing to compute"))
        item.cost = costs[("cell", item.key)] = cost
        if cell.applicable:
            first_cell.setdefault(ctx.data_key(cell.benchmark), cost)
        tasks.setdefault(bench.task, StageSummary(bench.task)).cells += 1

    decode = StageSummary("data decoding")
    for work in data_work(ctx, [i.cell for i in plan.cells], [spec for _i, spec in needed]):
        rate = estimator.decode_seconds(work.dataset)
        decode.units += work.units
        decode.frames = None if work.frames is None or decode.frames is None \
            else decode.frames + work.frames
        decode.disk_bytes = None if work.disk_bytes is None or decode.disk_bytes is None \
            else decode.disk_bytes + work.disk_bytes
        if work.note:
            decode.notes.append(f"{work.dataset}: {work.note}")
        if work.frames:
            decode.seconds += work.frames * rate.seconds
            decode.qualities[rate.quality] = decode.qualities.get(rate.quality, 0) + 1
            decode.notes.append(f"{work.dataset}: {rate.basis}")
        pool_costs = [c for c in costs.values()
                      if c.spec is not None and c.spec.domain == work.domain]
        if pool_costs and work.pool_frames:
            pool_costs[0].decode_s += work.pool_frames * rate.seconds
        for key, frames in work.cell_frames.items():
            if key in first_cell:
                first_cell[key].decode_s += frames * rate.seconds
    for (kind, _key), cost in costs.items():
        stage = pre if kind == "pretrain" else tasks[cost.stage]
        stage.seconds += cost.estimate.seconds
        if kind == "pretrain" or cost.fields:  # n/a cells cost nothing to estimate
            stage.qualities[cost.estimate.quality] = stage.qualities.get(
                cost.estimate.quality, 0) + 1
    jobs = max(1, options.jobs)
    return RunEstimate(costs, [decode, pre, *tasks.values()], estimator, jobs)


# ---- text -----------------------------------------------------------------------------------


def clock_text(seconds: float) -> str:
    """``h:mm:ss``."""
    seconds = int(round(max(0.0, seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def bytes_text(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _qualities_text(qualities: Mapping[str, int]) -> str:
    return ", ".join(f"{qualities[q]} {q}" for q in ("measured", "related", "guess")
                     if qualities.get(q))


def estimate_lines(estimate: RunEstimate) -> list[str]:
    """The ``--dry-run`` estimate, one line per stage and a total."""
    lines = ["estimate (per stage; the time says whether its rates were measured on this "
             f"machine, taken from related items, or guessed; rates: {rates_path()}):"]
    for stage in estimate.stages:
        parts: list[str] = []
        if stage.name == "data decoding":
            frames = ("frames not known for every dataset" if stage.frames is None
                      else f"{stage.frames:,} frames to decode")
            parts += [f"{stage.units} units to read", frames,
                      f"frame cache disk {bytes_text(stage.disk_bytes)}"]
        elif stage.name == "pretraining":
            parts += [f"{stage.pretraining_runs} pretraining runs ({stage.cached_runs} cached)",
                      f"{stage.steps:,} steps",
                      f"checkpoints {bytes_text(stage.disk_bytes)}"
                      + (" (not measured yet)" if stage.disk_bytes is None
                         and stage.pretraining_runs else "")]
        else:
            parts.append(f"{stage.cells} cells")
        quality = _qualities_text(stage.qualities)
        if stage.name == "data decoding" and stage.frames is None:
            quality = ", ".join(filter(None, [quality, "the frames counted only"]))
        parts.append(clock_text(stage.seconds) + (f" ({quality})" if quality else ""))
        lines.append(f"  {stage.name:22s} " + ", ".join(parts))
        lines += [f"  {'':22s}   {note}" for note in dict.fromkeys(stage.notes)]
    decode = estimate.stages[0].seconds if estimate.stages else 0.0
    jobs = f" with --jobs {estimate.jobs}" if estimate.jobs > 1 else ""
    lines.append(f"  {'total':22s} {clock_text(estimate.seconds)}{jobs} "
                 f"(decoding, {clock_text(decode)} of it, happens on first use inside "
                 "pretraining and the cells; `ssl-bench data prepare` can do it ahead)")
    return lines


__all__ = ["CELL_LEVELS", "CellRateIndex", "DataWork", "Estimator", "GUESS_CELL_S",
           "GUESS_DECODE_S", "GUESS_STEP_S", "GUESS_STEPS",
           "RunEstimate", "StageSummary", "spread", "bytes_text", "clock_text",
           "data_work", "estimate_lines", "estimate_run", "needed_pretrainings", "states_costs",
           "task_fps"]
