"""The pretraining compute of a dry run (``ssl_bench.engine.flops``): FLOPs of one training step
counted by hand on a Linear layer, the real-step fallback, the cache, measured rates replacing
the assumed throughput, and the lines a paper-profile dry run prints."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from ssl_bench.api import Encoder, PretrainPool
from ssl_bench.engine.cost import PretrainSpec
from ssl_bench.engine.flops import (
    StepFlops,
    assumed_throughput,
    cached_step_flops,
    count_step_flops,
    pretraining_compute,
    shows_compute,
)
from ssl_bench.engine.rates import PretrainRate, Rates, pretrain_key
from ssl_bench.testing import DummyMethod, cli_exit_code, smoke_method

IN, OUT, BATCH = 12, 5, 4


class _Ones(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.ones(IN)


class LinearMethod(DummyMethod):
    """One Linear layer, loss = the sum of its outputs; ``input_grad``: the step makes its
    input require a gradient (so the backward computes the input's gradient too)."""

    meta = DummyMethod.meta.model_copy(update={"id": "linear-flops"})
    profiles = {"paper": {"epochs": 1, "batch_size": BATCH, "image_size": 8}}
    input_grad = True
    read_values = False

    def build(self) -> nn.Module:
        return nn.Linear(IN, OUT)

    def pretrain_dataset(self, pool: PretrainPool) -> torch.utils.data.Dataset:
        return _Ones()

    def training_step(self, model: nn.Module, batch: Any, progress: float
                      ) -> dict[str, torch.Tensor]:
        x = batch.clone().requires_grad_(self.input_grad)
        out = model(x)
        if self.read_values and float(out.detach().sum()) > 1e9:  # reads a tensor value
            out = out * 2
        return {"loss": out.sum()}

    def encoder(self, model: nn.Module) -> Encoder:
        raise NotImplementedError


class LinearNoInputGrad(LinearMethod):
    input_grad = False


class LinearReadsValues(LinearMethod):
    read_values = True


def test_a_linear_layer_counts_2_in_out_batch_forward_and_3x_with_backward() -> None:
    forward = 2 * IN * OUT * BATCH
    step = count_step_flops(smoke_method(LinearMethod, "paper"))
    assert step == StepFlops(3 * forward, BATCH, 8, "fake")  # forward, input grad, weight grad
    # an input that needs no gradient: forward and the weight's gradient only
    step = count_step_flops(smoke_method(LinearNoInputGrad, "paper"))
    assert step.flops == 2 * forward


def test_a_step_that_reads_tensor_values_is_counted_on_a_real_batch_and_scaled() -> None:
    step = count_step_flops(smoke_method(LinearReadsValues, "paper"))
    assert step.how == "real" and step.flops == 3 * 2 * IN * OUT * BATCH
    assert "real step at batch 2 and scaled to 4" in step.note


def test_counts_are_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "flops.json"
    method = smoke_method(LinearMethod, "paper")
    first = cached_step_flops(method, path=path)
    assert path.exists()

    def no_count(*_args: Any) -> StepFlops:
        raise AssertionError("counted again")

    monkeypatch.setattr("ssl_bench.engine.flops.count_step_flops", no_count)
    assert cached_step_flops(method, path=path) == first
    # another config is another count
    with pytest.raises(AssertionError, match="counted again"):
        cached_step_flops(smoke_method(LinearMethod, "paper", batch_size=8), path=path)


def test_measured_gpu_rates_replace_the_assumed_throughput() -> None:
    spec = PretrainSpec("byol", "surgical", "paper", "cuda", "cfg1", "pool", None)
    step = StepFlops(1e13, 256, 224, "fake")
    throughput = assumed_throughput("bf16")
    assert throughput.flops_per_second == pytest.approx(0.4 * 989e12)
    assumed = pretraining_compute(spec, 1000, step, Rates(), throughput, on_gpu=True)
    assert assumed.measured_s_per_step is None
    assert assumed.gpu_seconds == pytest.approx(1e16 / (0.4 * 989e12))
    rate = PretrainRate("byol", "paper", "surgical", "cuda", 0.25, 500, config="cfg1")
    rates = Rates(pretraining={pretrain_key("byol", "paper", "surgical", "cuda"): rate})
    measured = pretraining_compute(spec, 1000, step, rates, throughput, on_gpu=True)
    assert measured.measured_s_per_step == 0.25 and measured.gpu_seconds == 250.0
    # another config, or a run not on a GPU: the assumption
    other = PretrainSpec("byol", "surgical", "paper", "cuda", "cfg2", "pool", None)
    assert pretraining_compute(other, 1000, step, rates, throughput, True).measured_s_per_step \
        is None
    assert pretraining_compute(spec, 1000, step, rates, throughput, False).measured_s_per_step \
        is None
    assert measured.flops == 1e16


def test_compute_shows_for_the_paper_profile_or_a_cuda_device() -> None:
    assert shows_compute("paper", "cpu") and shows_compute("cpu", "cuda:1")
    assert not shows_compute("cpu", "cpu") and not shows_compute("smoke", "cpu")


def test_paper_dry_run_prints_gpu_hours_per_method_and_the_assumption(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """byol (fake tensors) and moco-v2 (a real step: its queue pointer is read with int()) on
    the small synthetic suite. A dry run writes nothing: before the suite exists the steps are
    a labelled guess; once it is written they come from the pools' frames. Its own cache: no
    other test's suite is there."""
    monkeypatch.setenv("SSL_BENCH_CACHE", str(tmp_path / "cache"))
    capsys.readouterr()
    assert cli_exit_code(["run", "--profile", "paper", "--dry-run", "--methods", "byol",
                          "--synthetic-size", "small", "--results", str(tmp_path / "r")]) == 0
    assert "steps guessed (1000): the pool's frames are counted once its data folders exist " \
        "(the synthetic suite: `ssl-bench data synth`)" in capsys.readouterr().out
    assert cli_exit_code(["data", "synth", "--size", "small"]) == 0
    assert cli_exit_code(["run", "--profile", "paper", "--dry-run", "--methods", "byol,moco-v2",
                          "--synthetic-size", "small", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "assumption: GPU-hours at 40 % of an H100 SXM's bf16 dense peak (989 TFLOP/s)" in out
    for method in ("byol", "moco-v2"):
        assert re.search(rf"^  {method}\s+\d+ runs?, [\d,]+ steps, [\d.]+ TFLOP/step \(batch "
                         r"256, 224 px\), .*, [\d.e-]+ GPU-hours \(assumed\)$", out, re.M), out
    assert "counted on a real step at batch 2 and scaled to 256" in out
    assert re.search(r"^  total\s+\d+ runs, .* GPU-hours \(\d+ assumed, 0 measured\)", out, re.M)
    assert "frame cache disk:" in out
    # the run wrote the small suite before planning: the steps come from the pools' frames
    assert re.search(r"steps: \d+ epoch\(s\) of [\d,]+ pool frames at batch 256", out), out
    assert "steps guessed" not in out and "are a guess" not in out


def test_a_cpu_profile_dry_run_prints_no_compute(
        testing_plugin: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert cli_exit_code(["run", "--methods", "dummy", "--benchmarks", "tiny-seg", "--seeds",
                          "0", "--profile", "smoke", "--dry-run", "--results",
                          str(tmp_path)]) == 0
    assert "pretraining compute" not in capsys.readouterr().out
