"""What each ``ssl-bench run`` into a results folder was asked to do, kept beside its records.

A record says how its cell was computed (identity, environment) but not which command produced
the folder, and that is what someone re-running a published board types first. Every run
(not ``--dry-run``) writes one file, ``<results>/runs/<UTC time>-<pid>.json``, atomically: the
command line as typed (``ssl-bench`` and its arguments), the time, the ssl-bench version and,
when the run read a run file (``--config``), that file's name and text. ``ssl-bench export``
puts these files in the bundle (``run/invocations/``), so a bundle carries the commands of the
runs its records came from.
"""

from __future__ import annotations

import os
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from ssl_bench import __version__, atomic

#: the folder under a results folder that holds one file per run
FOLDER = "runs"


def write_invocation(results: Path, argv: Sequence[str], run_file: Path | None = None,
                     now: datetime | None = None) -> Path:
    """Write this run's invocation file under ``results`` and return its path."""
    when = now or datetime.now(timezone.utc)
    entry: dict[str, Any] = {
        "command": "ssl-bench " + shlex.join(list(argv)),
        "argv": list(argv),
        "started": when.isoformat(timespec="seconds"),
        "ssl_bench_version": __version__,
    }
    if run_file is not None:
        entry["run_file"] = {"name": Path(run_file).name, "text": Path(run_file).read_text()}
    path = Path(results) / FOLDER / f"{when.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}.json"
    atomic.write_json(path, entry)
    return path


def launcher_rank(launcher: str) -> int:
    """This process's rank under ``--launcher`` from the launcher's environment (torchrun:
    ``RANK``; srun: ``SLURM_PROCID``), before any process group exists; 0 without one. Only
    rank 0 writes the invocation: every rank runs the same command."""
    name = {"pytorch": "RANK", "slurm": "SLURM_PROCID"}.get(launcher)
    value = os.environ.get(name, "0") if name else "0"
    return int(value) if value.strip().isdigit() else 0


def invocation_files(results: Path) -> list[Path]:
    """The invocation files of a results folder, oldest first."""
    folder = Path(results) / FOLDER
    return sorted(folder.glob("*.json")) if folder.is_dir() else []
