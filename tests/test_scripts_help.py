"""Every perf and validity script starts: ``python SCRIPT --help`` exits 0 with a usage line (a
script whose imports went stale fails here, not in front of a user)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: modules of helpers the scripts import, not scripts themselves
HELPERS = {"perf_common.py", "calls.py"}
SCRIPTS = sorted(p for folder in ("perf", "validity")
                 for p in (ROOT / "benchmarks" / folder).glob("*.py") if p.name not in HELPERS)


def test_there_are_scripts() -> None:
    assert len(SCRIPTS) >= 14


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_script_help(script: Path) -> None:
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout.lower()
