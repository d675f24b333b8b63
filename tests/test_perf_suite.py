"""Tests of the performance suite's helpers (benchmarks/perf): README sections, tables, the
step clock, the FLOP count of a step and the plain loop. Tiny models, a few milliseconds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

PERF = Path(__file__).resolve().parents[1] / "benchmarks" / "perf"
sys.path.insert(0, str(PERF))

import perf_common as pc  # noqa: E402
import pretrain_throughput as pt  # noqa: E402

from ssl_bench.testing import DummyMethod, smoke_method, tiny_pool  # noqa: E402


def test_replace_section_keeps_other_sections(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Perf\n\n## Frame cache\n\nhand-written figures\n")
    pc.replace_section("x", "first", "X section", readme)
    pc.replace_section("x", "second", "X section", readme)
    text = readme.read_text()
    assert "hand-written figures" in text
    assert text.count("## X section") == 1
    assert "second" in text and "first" not in text


def test_table_formats_and_marks_missing() -> None:
    out = pc.table([{"a": "m", "b": 1.234}, {"a": "n"}], [("a", "A", ""), ("b", "B", ".1f")])
    assert out.splitlines() == ["| A | B |", "|---|---:|", "| m | 1.2 |", "| n | n/a |"]


def test_step_clock_counts_every_call() -> None:
    method = smoke_method(DummyMethod)
    clock = pc.StepClock(method)
    model = method.build()
    batch = torch.rand(4, 3, 32, 32)
    for _ in range(3):
        method.training_step(model, batch, 0.0)
    assert len(clock.starts) == 3
    gaps = clock.intervals(skip=1)
    assert len(gaps) == 1 and gaps[0] >= 0.0


def test_step_flops_match_a_hand_count() -> None:
    class Linear(DummyMethod):
        def build(self) -> torch.nn.Module:
            return torch.nn.Linear(5, 3, bias=False)

        def training_step(self, model, batch, progress):  # type: ignore[no-untyped-def]
            return {"loss": model(batch).sum()}

    method = smoke_method(Linear)
    flops, by_op = pt.step_flops(method, torch.rand(4, 5))
    # forward 2*4*5*3 = 120; backward: grad of the weight only (input needs no grad) = 120
    assert flops == 240


def test_plain_loop_runs_the_requested_steps() -> None:
    method = smoke_method(DummyMethod, batch_size=4)
    clock = pc.StepClock(method)
    seconds = pt.plain_loop(method, tiny_pool(size=32), steps=5, seed=0,
                            device=torch.device("cpu"))
    assert len(clock.starts) == 5 and seconds > 0


def test_depthwise_conv_flops_match_a_hand_count() -> None:
    class Depthwise(DummyMethod):
        def build(self) -> torch.nn.Module:
            return torch.nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)

        def training_step(self, model, batch, progress):  # type: ignore[no-untyped-def]
            return {"loss": model(batch).sum()}

    method = smoke_method(Depthwise)
    # forward: 2 FLOPs x 25 output pixels x 9 taps x 4 channels x 1 input channel per group
    forward = 2 * 25 * 9 * 4 * 1
    flops, _ = pt.step_flops(method, torch.rand(1, 4, 5, 5))
    assert flops == forward * 2  # forward + weight gradient (the input needs no gradient)
    flops, _ = pt.step_flops(method, torch.rand(1, 4, 5, 5).requires_grad_())
    assert flops == forward * 3  # + input gradient


def test_op_class_splits_depthwise_from_dense_convolutions() -> None:
    depthwise_weight, pointwise_weight = [4, 1, 3, 3], [8, 4, 1, 1]
    assert pt.op_class("aten::convolution_backward",
                       [[1, 4, 5, 5], [1, 4, 5, 5], depthwise_weight]) == "depthwise convolution"
    assert pt.op_class("aten::mkldnn_convolution",
                       [[1, 4, 5, 5], depthwise_weight, []]) == "depthwise convolution"
    assert pt.op_class("aten::mkldnn_convolution",
                       [[1, 4, 5, 5], pointwise_weight, []]) == "dense convolution"
    assert pt.op_class("aten::addmm", [[3], [2, 5], [5, 3]]) == "matmul / linear / attention"
    assert pt.op_class("aten::convolution") == "convolution"  # no shapes recorded
    assert not pt.is_depthwise([1, 1, 3, 3]) and not pt.is_depthwise([4, 1, 1, 1])


def test_conv_flop_split_matches_a_hand_count() -> None:
    class Separable(DummyMethod):
        def build(self) -> torch.nn.Module:
            return torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1, groups=4),
                                       torch.nn.Conv2d(4, 8, 1))

        def training_step(self, model, batch, progress):  # type: ignore[no-untyped-def]
            return {"loss": model(batch).sum()}

    split = pt.conv_flop_split(smoke_method(Separable), torch.rand(2, 4, 5, 5))
    assert split["depthwise"] == 2 * (2 * 4 * 25) * 9  # 2 FLOPs x outputs x taps
    assert split["dense"] == 2 * (2 * 8 * 25) * 4  # 2 FLOPs x outputs x input channels


def test_gpu_script_loops_run_on_cpu() -> None:
    import gpu

    pool = tiny_pool(size=32)
    assert len(gpu.tiled(pool, 3)) == 3 * len(pool)
    method = smoke_method(DummyMethod, batch_size=4)
    clock = pc.StepClock(method)
    rate = gpu.timed_loop(method, gpu.tiled(pool, 2), torch.device("cpu"), "bf16+cl",
                          steps=4, warmup=1)
    assert rate > 0 and len(clock.starts) == 4
    batch = next(iter(pt.make_loader(method, method.pretrain_dataset(pool), 0)))
    assert gpu.compute_rate(smoke_method(DummyMethod, batch_size=4), batch,
                            torch.device("cpu"), steps=3, warmup=1) > 0
    assert gpu.channels_last(torch.rand(2, 3, 4, 4)).is_contiguous(
        memory_format=torch.channels_last)


def test_batch_len_counts_items_not_fields() -> None:
    import data_path

    images = torch.zeros(5, 3, 4, 4)
    assert data_path.batch_len(images) == 5
    assert data_path.batch_len([images, images]) == 5
    assert data_path.batch_len({"view1": images, "grid1": torch.zeros(5, 64, 2),
                                "flow": torch.zeros(5, 64, 2)}) == 5


def test_decode_cost_line_is_never_negative() -> None:
    """The full-resolution projection's cost line: exact through two clean points, and on a
    busy machine's inverted timings (the larger clip faster, which once projected a zero-second
    prepare and divided by it) a flat, positive cost instead of a negative slope."""
    import full_scale

    def row(pixels: int, s: float) -> dict[str, float]:
        return {"pixels": pixels, "s_per_frame": s}

    # 1 ms + 2 us/pixel: 1000 px -> 3 ms, 11000 px -> 23 ms
    fixed, per_pixel = full_scale.per_frame_cost([row(1000, 0.003), row(11000, 0.023)])
    assert fixed == pytest.approx(0.001, rel=1e-6)
    assert per_pixel == pytest.approx(2e-6, rel=1e-6)
    # inverted: no pixel term, the fixed cost is the least-squares mean of the two
    fixed, per_pixel = full_scale.per_frame_cost([row(576, 0.004), row(9216, 0.002)])
    assert per_pixel == 0.0 and fixed == pytest.approx(0.003, rel=1e-6)
    # a steep line whose intercept would be negative: through the origin instead
    fixed, per_pixel = full_scale.per_frame_cost([row(1000, 0.001), row(2000, 0.004)])
    assert fixed == 0.0 and per_pixel > 0
    assert fixed + per_pixel * 854 * 480 > 0


def test_full_scale_quick_mode_writes_its_figures(tmp_path: Path) -> None:
    import full_scale

    lengths = full_scale.cholec80_lengths()
    assert len(lengths) == 80 and sorted(lengths) == list(range(1, 81))
    assert sum(lengths.values()) == pytest.approx(80 * 38 * 60 * 25, rel=1e-4)
    # longest first, each to the worker that frees first: 5+3 / 4+3+3 (the optimum, 9, is
    # 5+4 / 3+3+3: this is the schedule data prepare follows, not the best one)
    assert full_scale.longest_first_makespan([5, 4, 3, 3, 3], 2) == 10
    readme = tmp_path / "README.md"
    readme.write_text("# Perf\n\n## Frame cache\n\nhand-written\n")
    result = full_scale.main(["--quick", "--results", str(tmp_path), "--readme", str(readme)])
    assert (tmp_path / "full_scale_quick.json").exists()
    prepare = result["prepare"]
    # the files the prepare wrote are the bytes the formula extrapolates from
    assert prepare["disk_bytes"] >= prepare["disk_expected_bytes"] > 0
    assert result["pool"]["frames"] > 0 and result["loader"][0]["loader_img_s"] > 0
    assert [r["cores"] for r in result["projection"]] == [2, 16]
    assert result["projection"][0]["seconds"] > result["projection"][1]["seconds"] > 0
    text = readme.read_text()
    assert "hand-written" in text and "<!-- perf:full_scale -->" in text
    assert "| `data prepare --jobs 2` wall time |" in text


def test_validity_quick_mode_runs_the_pipeline_and_reads_its_statistics(tmp_path: Path) -> None:
    """benchmarks/validity: two tiny points on the small suite (smoke profile), through
    `ssl-bench run` and the leaderboard's paired statistics; the broken control is flagged."""
    import json

    from ssl_bench import plugins

    sys.path.insert(0, str(PERF.parent / "validity"))
    import validity

    plugins.reset()
    try:
        validity.main(["--quick", "--work", str(tmp_path / "work"),
                       "--benchmark", "cholecseg8k-seg"])
    finally:
        plugins.reset()
    result = json.loads((PERF.parent / "validity" / "results" / "validity_quick.json")
                        .read_text())
    assert [p["steps"] for p in result["points"]] == [1, 2]
    last = result["points"][-1]["rows"]
    assert set(last) == {"random-init", "simclr", "mae", "simclr-collapsed"}
    assert last["random-init"]["delta"] == 0.0 and last["simclr"]["p_holm"] is not None
    assert last["simclr-collapsed"]["collapsed"] is True
    assert last["simclr"]["collapsed"] is False


def test_eta_check_reads_the_first_cell_eta_and_the_remaining_time() -> None:
    import eta_check

    lines = [(1.0, "loading the surgical pretraining pool"),
             (10.0, "run: 12 cells and 2 pretraining runs to compute; estimated 0:04:32 "
                    "(10 measured, 4 related)"),
             (26.0, "[1/12] ok      a|b|0.01|0  (8.4 s; run ETA 0:02:39)"),
             (60.0, "[2/12] failed  a|b|0.01|1  (3.0 s; run ETA 0:01:00)"),
             (110.0, "[12/12] ok      a|c|0.01|1  (0.7 s; run ETA 0:00:00)")]
    got = eta_check.parse(lines, 0.0, 115.0)
    assert (got["plan_estimate_s"], got["plan_basis"]) == (272, "10 measured, 4 related")
    assert (got["eta_after_first_cell_s"], got["actual_remaining_s"]) == (159, 84.0)
    assert got["eta_ratio"] == pytest.approx(159 / 84) and got["within_2x"]
    assert got["plan_ratio"] == pytest.approx(272 / 110) and got["cells_done"] == 3
