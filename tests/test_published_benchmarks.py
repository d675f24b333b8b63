"""The benchmarks that follow published protocols: registered, not in the default
run, their datasets / tasks / options valid, their label counts possible on the real splits,
and their reference rows consistent with the task's metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssl_bench import plugins
from ssl_bench.api import PROFILES, Benchmark
from ssl_bench.default_plugins.benchmarks import PUBLISHED_PROTOCOL_BENCHMARKS
from ssl_bench.default_plugins.datasets.btcv import TRAINING_IDS, btcv_split
from ssl_bench.default_plugins.datasets.cholec80 import cholec80_split
from ssl_bench.default_plugins.datasets.cholecseg8k import VIDEOS, cholecseg8k_split

IDS = ["cholec80-phase-endovit", "cholecseg8k-seg-endovit", "btcv-organ-monai",
       "cholec80-phase-distillself"]


def by_id(bench_id: str) -> Benchmark:
    return next(b for b in PUBLISHED_PROTOCOL_BENCHMARKS if b.id == bench_id)


def splits_of(bench: Benchmark) -> list[str]:
    """The split of every unit of the real dataset under the benchmark's options."""
    options = bench.options_for("paper")
    if bench.dataset == "cholec80":
        return [cholec80_split(n, options.get("split", "40/8/32")) for n in range(1, 81)]
    if bench.dataset == "cholecseg8k":
        assert options["unit"] == "video"
        return [cholecseg8k_split(v, options["split"]) for v in VIDEOS]
    return [btcv_split(cid, options["split"]) for cid in TRAINING_IDS]


def test_registered_and_not_in_the_default_run() -> None:
    regs = plugins.get_registries()
    assert [b.id for b in PUBLISHED_PROTOCOL_BENCHMARKS] == IDS
    for bench_id in IDS:
        entry = regs.benchmarks.entry(bench_id)
        assert entry.plugin == "ssl-bench" and entry.obj.default is False
    assert {e.id for e in regs.benchmarks if e.obj.default} >= {"cholec80-phase",
                                                                "cholecseg8k-seg", "btcv-organ"}


@pytest.mark.parametrize("bench_id", IDS)
def test_dataset_task_and_options_are_valid(bench_id: str, tmp_path: Path) -> None:
    regs = plugins.get_registries()
    bench = by_id(bench_id)
    dataset_cls = regs.datasets.get(bench.dataset)
    task_cls = regs.tasks.get(bench.task)
    assert bench.protocol in task_cls.meta.protocols
    assert dataset_cls.meta.modality in task_cls.meta.modalities
    assert dataset_cls.meta.label_kind == task_cls.meta.label_kind
    for profile in PROFILES:
        # the reader accepts the options (pydantic, extra="forbid") and the task its config
        dataset_cls(tmp_path, bench.options_for(profile), cache_dir=tmp_path / "cache")
        config = task_cls.make_config(profile, bench.task_options_for(profile))
        for key, value in bench.task_options_for(profile).items():
            assert getattr(config, key) == value
    assert bench.description.count("Remaining differences") == 1


@pytest.mark.parametrize("bench_id", IDS)
def test_label_counts_fit_the_training_split(bench_id: str) -> None:
    bench = by_id(bench_id)
    splits = splits_of(bench)
    assert bench.label_counts == tuple(sorted(set(bench.label_counts)))
    assert 1 <= bench.label_counts[0] and bench.label_counts[-1] <= splits.count("train")
    assert splits.count("test") > 0


def test_published_splits_are_the_papers() -> None:
    # EndoViT Cholec80 (TeCNO): 1-40 train, 41-48 val, 49-80 test
    assert splits_of(by_id("cholec80-phase-endovit")).count("train") == 40
    # EndoViT CholecSeg8k: 13 train videos, val 17 + 52, test 12 + 27
    seg = dict(zip(VIDEOS, splits_of(by_id("cholecseg8k-seg-endovit"))))
    assert [v for v, s in seg.items() if s == "test"] == [12, 27]
    assert [v for v, s in seg.items() if s == "val"] == [17, 52]
    # MONAI dataset_0.json: 24 training cases, validation 0035-0040 (the test split here)
    btcv = dict(zip(TRAINING_IDS, splits_of(by_id("btcv-organ-monai"))))
    assert sorted(c for c, s in btcv.items() if s == "test") == [f"00{n}" for n in range(35, 41)]
    assert list(btcv.values()).count("train") == 24 and "val" not in btcv.values()
    # DistillSelf 40/40: test 41-80, val carved from the training videos (33-40)
    cholec = splits_of(by_id("cholec80-phase-distillself"))
    assert cholec[40:] == ["test"] * 40 and set(cholec[:40]) == {"train", "val"}


@pytest.mark.parametrize("bench_id", IDS)
def test_reference_rows_use_the_task_metrics_and_benchmark_counts(bench_id: str) -> None:
    regs = plugins.get_registries()
    bench = by_id(bench_id)
    task_cls = regs.tasks.get(bench.task)
    for ref in bench.references:
        assert ref.metric in task_cls.meta.higher_is_better
        assert ref.label_count in bench.label_counts and ref.label_frac is None
        assert 0.0 < ref.value < 100.0 and ref.url and ref.citation


def test_seeded_figures() -> None:
    def figures(bench_id: str, method: str | None = None) -> dict[int, float]:
        return {r.label_count: r.value for r in by_id(bench_id).references
                if method is None or r.method == method}

    # EndoViT README: phase stage 2 few-shot table; CholecSeg8k low-res few-shot + full data
    assert figures("cholec80-phase-endovit") == {2: 78.89, 4: 80.28, 8: 84.68}
    assert figures("cholecseg8k-seg-endovit") == {1: 40.95, 2: 54.02, 4: 57.87, 13: 65.05}
    # MONAI vit_unetr_ssl README section 5
    assert figures("btcv-organ-monai", "MONAI ViT SSL (pretrained)") == {
        6: 70.09, 12: 79.55, 24: 82.30}
    assert figures("btcv-organ-monai", "random init") == {6: 63.07, 12: 76.06, 24: 78.91}
    assert by_id("cholec80-phase-distillself").references == ()
