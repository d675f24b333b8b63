"""The default profile: ``make run`` (no ``--data-root``) runs ``cpu`` on every device, so a
machine with a GPU does not start the paper budgets on the synthetic suite by accident."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssl_bench.engine.plan import RunOptions
from ssl_bench.profiles import default_profile


def _options(tmp_path: Path, **given: object) -> RunOptions:
    """``make run``'s command (``ssl-bench run --methods all --label-frac 0.01``) as options."""
    args: dict[str, object] = dict(methods="all", benchmarks="default", label_frac="0.01",
                                   seeds=None, profile=None, data_root=None,
                                   synthetic_size="default", results=tmp_path / "results",
                                   device="auto", jobs="auto", dry_run=True, quiet=True)
    args.update(given)
    return RunOptions.from_cli(**args)  # type: ignore[arg-type]


def test_default_profile_by_device_and_data() -> None:
    assert default_profile("cpu", None) == "cpu"
    assert default_profile("cuda", None) == "cpu"
    assert default_profile("cuda:1", None) == "cpu"
    assert default_profile("cpu", Path("/data")) == "cpu"
    assert default_profile("cuda", Path("/data")) == "paper"


def test_make_run_on_a_gpu_machine_runs_the_cpu_profile(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    options = _options(tmp_path)
    assert (options.device, options.profile, options.precision) == ("cuda", "cpu", "bf16")
    asked = _options(tmp_path, profile="paper")
    assert (asked.device, asked.profile, asked.pretraining) == ("cuda", "paper", "shared")
    data = tmp_path / "data"
    data.mkdir()
    assert _options(tmp_path, data_root=data).profile == "paper"
