"""``ssl-bench run --config FILE``: a YAML run file sets any run option by its long name, one
test per kind of option (text, list, number, choice, flag, overrides, checkpoints as a list of
mappings), and the command line wins over the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import yaml

from ssl_bench.testing import cli_exit_code

pytestmark = pytest.mark.usefixtures("testing_plugin", "torch_one_thread")


def _dry_run(tmp_path: Path, options: dict[str, object], *extra: str,
             capsys: pytest.CaptureFixture[str]) -> str:
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump({"benchmarks": "tiny-seg", "profile": "smoke",
                                        "device": "cpu", "results": str(tmp_path / "results"),
                                        "dry-run": True, **options}))
    code = cli_exit_code(["run", "--config", str(run_file), *extra])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def _planned(out: str) -> list[str]:
    """The keys of the cells the dry run would compute."""
    return sorted(line.split(":")[0].strip() for line in out.splitlines()
                  if line.startswith("  ") and ": compute" in line)


def test_text_list_and_number_options(tmp_path: Path, capsys) -> None:
    out = _dry_run(tmp_path, {"methods": "dummy", "seeds": [3, 4], "label-frac": [0.5, 1.0]},
                   capsys=capsys)
    assert _planned(out) == ["dummy|tiny-seg|0.5|3", "dummy|tiny-seg|0.5|4",
                             "dummy|tiny-seg|1|3", "dummy|tiny-seg|1|4"]


def test_label_count_and_jobs(tmp_path: Path, capsys) -> None:
    out = _dry_run(tmp_path, {"methods": "dummy", "seeds": 0, "label-count": 1, "jobs": 1},
                   capsys=capsys)
    assert _planned(out) == ["dummy|tiny-seg|n1|0"]


def test_choice_options_and_the_command_line_winning(tmp_path: Path, capsys) -> None:
    out = _dry_run(tmp_path, {"methods": "dummy", "seeds": "0,1", "label-frac": 0.5,
                              "pretraining": "shared"}, capsys=capsys)
    assert "1 pretraining runs (0 cached)" in out  # shared: one run for both seeds
    out = _dry_run(tmp_path, {"methods": "dummy", "seeds": "0,1", "label-frac": 0.5,
                              "pretraining": "shared"}, "--pretraining", "per-seed",
                   capsys=capsys)
    assert "2 pretraining runs (0 cached)" in out
    out = _dry_run(tmp_path, {"methods": "dummy", "seeds": "0", "label-frac": 0.5},
                   "--seeds", "5", capsys=capsys)
    assert _planned(out) == ["dummy|tiny-seg|0.5|5"]


def test_overrides_as_a_mapping_enter_the_plan(tmp_path: Path, capsys) -> None:
    out = _dry_run(tmp_path, {"methods": "dummy", "seeds": 0, "label-frac": 0.5,
                              "overrides": {"dummy": {"max_steps": 7}}}, capsys=capsys)
    assert "1 pretraining runs (0 cached), 7 steps" in out


def test_an_unknown_option_is_one_line(tmp_path: Path, capsys) -> None:
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump({"method": "dummy"}))
    assert cli_exit_code(["run", "--config", str(run_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown run option 'method'" in err[0] and "methods" in err[0]


def test_checkpoints_as_a_list_of_mappings(tmp_path: Path, capsys) -> None:
    """Each mapping is a checkpoint row; its relative path is read from the run file's
    folder; inline NAME=PATH strings mix with them."""
    torch.manual_seed(0)
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(timm.create_model("test_resnet", pretrained=False).state_dict(),
               weights / "a.pth")
    torch.save(timm.create_model("test_resnet", pretrained=False).state_dict(),
               weights / "b.pth")
    out = _dry_run(tmp_path, {"methods": "dummy", "seeds": 0, "label-frac": 0.5,
                              "checkpoints": [
                                  {"name": "mine-a", "path": "weights/a.pth",
                                   "arch": "test_resnet"},
                                  f"mine-b={weights / 'b.pth'}:test_resnet"]},
                   capsys=capsys)
    assert _planned(out) == ["dummy|tiny-seg|0.5|0", "mine-a|tiny-seg|0.5|0",
                             "mine-b|tiny-seg|0.5|0"]


def test_a_bad_checkpoint_mapping_is_one_line(tmp_path: Path, capsys) -> None:
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump({"checkpoints": [{"name": "x", "path": "gone.pth",
                                                         "arch": "test_resnet"}],
                                        "dry-run": True, "profile": "smoke"}))
    assert cli_exit_code(["run", "--config", str(run_file)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gone.pth" in err[0], err


@pytest.mark.parametrize(("profile", "seeds"), [("smoke", [0, 1, 2]), ("cpu", [0, 1, 2, 3, 4])])
def test_the_profile_chooses_the_seeds_when_none_are_given(tmp_path: Path, capsys,
                                                           profile: str, seeds: list[int]
                                                           ) -> None:
    out = _dry_run(tmp_path, {"methods": "dummy", "label-frac": 0.5, "profile": profile},
                   capsys=capsys)
    assert _planned(out) == [f"dummy|tiny-seg|0.5|{s}" for s in seeds]
