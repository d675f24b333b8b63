"""A third party writes, installs and runs a method plugin (docs/writing-a-plugin.md)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-plugin.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_plugin_from_the_docs_installs_lists_and_runs(tmp_path: Path) -> None:
    pkg = tmp_path / "ssl-bench-mymethod"
    (pkg / "ssl_bench_mymethod").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(_blocks("toml")[0])
    (pkg / "ssl_bench_mymethod" / "__init__.py").write_text("")
    (pkg / "ssl_bench_mymethod" / "plugin.py").write_text(_blocks("python")[0])
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
           "--no-build-isolation", str(pkg)]
    subprocess.run(pip, check=True)
    try:
        out = subprocess.run([sys.executable, "-m", "ssl_bench.cli", "list", "--json"],
                             capture_output=True, text=True, check=True)
        methods = {m["id"]: m for m in json.loads(out.stdout)["methods"]}
        assert methods["mymethod"]["plugin"] == "ssl-bench-mymethod"
        run = subprocess.run(
            [sys.executable, "-m", "ssl_bench.cli", "run", "--methods", "mymethod",
             "--benchmarks", "cholecseg8k-seg", "--label-frac", "0.5", "--seeds", "0",
             "--profile", "smoke", "--synthetic-size", "small", "--quiet",
             "--results", str(tmp_path / "results")],
            capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        record = json.loads(next((tmp_path / "results" / "records").rglob("*.json")).read_text())
        assert record["method"]["plugin"] == "ssl-bench-mymethod" and record["status"] == "ok"
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y",
                        "ssl-bench-mymethod"], check=True)
