"""Config overrides (``-o KEY=VALUE``) and run files (``--config run.yaml``).

An override sets one setting of a method's or a task's ``Config`` on top of the profile:

* ``-o simclr.max_steps=500``: method ``simclr``, setting ``max_steps``;
* ``-o task.phase-recognition.epochs=50``: task ``phase-recognition``, setting ``epochs``.

Values are read as YAML scalars (``500`` is an int, ``1e-3`` a float, ``true`` a bool,
``[1, 2]`` a list). Every override is checked against the ``Config`` model of its method or
task: an unknown id or setting is one line naming the valid ones. Overrides enter the config
and so the config hash and the cell identity: a record made with other settings is never
reused.

A run file is a YAML mapping of ``ssl-bench run`` options (the long option names, with ``-``
or ``_``), plus ``overrides``: a list of ``KEY=VALUE`` strings or a mapping
``{simclr: {max_steps: 500}, task.phase-recognition: {epochs: 50}}``. Options given on the
command line win over the file.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ssl_bench.errors import SSLBenchError

Overrides = dict[str, dict[str, Any]]


def parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def parse_overrides(items: Iterable[str]) -> tuple[Overrides, Overrides]:
    """``["simclr.max_steps=500", "task.phase-recognition.epochs=50"]`` ->
    ``({"simclr": {"max_steps": 500}}, {"phase-recognition": {"epochs": 50}})``."""
    methods: Overrides = {}
    tasks: Overrides = {}
    for item in items:
        if "=" not in item:
            raise SSLBenchError(f"-o {item!r}: write METHOD.SETTING=VALUE or "
                                "task.TASK.SETTING=VALUE, e.g. -o simclr.max_steps=500")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if parts[0] == "task" and len(parts) >= 3:
            target, owner, setting = tasks, ".".join(parts[1:-1]), parts[-1]
        elif parts[0] != "task" and len(parts) >= 2:
            target, owner, setting = methods, ".".join(parts[:-1]), parts[-1]
        else:
            raise SSLBenchError(f"-o {item!r}: write METHOD.SETTING=VALUE or "
                                "task.TASK.SETTING=VALUE, e.g. -o task.phase-recognition.epochs=50")
        target.setdefault(owner, {})[setting] = parse_value(value)
    return methods, tasks


def _check(kind: str, registry: Any, overrides: Overrides) -> None:
    for owner, settings in overrides.items():
        cls = registry.get(owner)  # unknown id: one line with close names
        fields = cls.Config.model_fields
        for setting in settings:
            if setting not in fields:
                close = difflib.get_close_matches(setting, list(fields), n=2, cutoff=0.6)
                hint = f"did you mean {' or '.join(close)}? " if close else ""
                raise SSLBenchError(f"-o {owner}.{setting}: {kind} {owner!r} has no setting "
                                    f"{setting!r}; {hint}valid: {', '.join(sorted(fields))}")


def check_overrides(regs: Any, methods: Overrides, tasks: Overrides) -> None:
    """Every override names a registered method/task and a field of its ``Config``."""
    _check("method", regs.methods, methods)
    _check("task", regs.tasks, tasks)


def read_run_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    """(run options with ``_`` names, override strings) from a YAML run file."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise SSLBenchError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SSLBenchError(f"--config {path}: not valid YAML ({str(exc).splitlines()[0]})"
                            ) from None
    if not isinstance(data, Mapping):
        raise SSLBenchError(f"--config {path}: the file must hold a mapping of run options")
    options = {str(k).replace("-", "_"): v for k, v in data.items() if k != "overrides"}
    raw = data.get("overrides") or []
    items: list[str] = []
    if isinstance(raw, Mapping):
        for owner, settings in raw.items():
            if not isinstance(settings, Mapping):
                raise SSLBenchError(f"--config {path}: overrides.{owner} must map settings to "
                                    "values")
            items += [f"{owner}.{k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
                      .replace("\n...", "") for k, v in settings.items()]
    elif isinstance(raw, list):
        items = [str(x) for x in raw]
    else:
        raise SSLBenchError(f"--config {path}: overrides must be a list of KEY=VALUE or a "
                            "mapping")
    return options, items


__all__ = ["Overrides", "check_overrides", "parse_overrides", "parse_value", "read_run_file"]
