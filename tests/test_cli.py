"""The CLI through click's runner and as a real process (one-line errors, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ssl_bench.cli import cli


def _ssl_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ssl_bench.cli", *args], capture_output=True,
                          text=True)


def test_list_json_has_the_four_kinds() -> None:
    result = CliRunner().invoke(cli, ["list", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"methods", "datasets", "tasks", "benchmarks", "conflicts"}
    assert any(b["id"] == "btcv-organ" for b in data["benchmarks"]) and data["conflicts"] == []


def test_help_everywhere_has_examples() -> None:
    for args in (["--help"], ["run", "--help"], ["list", "--help"], ["leaderboard", "--help"],
                 ["data", "--help"], ["plugins", "--help"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0
        assert "Examples:" in result.output or "Example" in result.output, args


def test_unknown_method_is_one_line_with_suggestions() -> None:
    proc = _ssl_bench("run", "--methods", "does-not-exist", "--dry-run")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "does-not-exist" in lines[0] and "Traceback" not in proc.stderr


def test_close_names_are_suggested() -> None:
    proc = _ssl_bench("run", "--benchmarks", "cholec80-phse", "--dry-run")
    assert proc.returncode != 0
    assert "did you mean cholec80-phase" in proc.stderr


@pytest.mark.parametrize("value", ["0", "-0.1", "1.5", "abc", "0.01,x"])
def test_bad_label_fractions_are_one_line_errors(value: str) -> None:
    proc = _ssl_bench("run", "--label-frac", value, "--dry-run")
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "--label-frac" in proc.stderr


def test_missing_data_root_is_a_one_line_error(tmp_path) -> None:
    proc = _ssl_bench("run", "--data-root", str(tmp_path / "nope"), "--dry-run")
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "--data-root" in proc.stderr


def test_debug_shows_the_traceback() -> None:
    proc = _ssl_bench("--debug", "run", "--methods", "does-not-exist", "--dry-run")
    assert proc.returncode != 0 and "Traceback" in proc.stderr
