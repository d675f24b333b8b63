"""The embedded synthetic suite: every registered dataset that can write itself in its real
layout (``Dataset.write_synthetic``), written once per (size, seed) under the cache.

A folder is reused only when its marker file names the same dataset version, size and seed;
a dataset whose synthetic writer changed (a new ``meta.version``) is written again, so a run
never reads data made by an older writer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ssl_bench import atomic

if TYPE_CHECKING:
    from ssl_bench.api import Dataset

MARKER = ".ssl-bench-synthetic.json"


def has_synthetic_writer(cls: Any) -> bool:
    """True when the dataset class overrides ``Dataset.write_synthetic``."""
    from ssl_bench.api import Dataset

    method = getattr(cls, "write_synthetic", None)
    base = vars(Dataset)["write_synthetic"].__func__
    return method is not None and getattr(method, "__func__", None) is not base


def synthetic_datasets() -> list[type[Dataset]]:
    """Registered datasets that can write themselves as synthetic data in their real layout."""
    from ssl_bench.plugins import resolved_registries

    return [e.obj for e in resolved_registries().datasets if has_synthetic_writer(e.obj)]


def marker_matches(target: Path, cls: Any, size: str, seed: int) -> bool:
    try:
        marker = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker == {"dataset": cls.meta.id, "version": cls.meta.version, "size": size,
                      "seed": seed}


def ensure_synthetic(root: Path, size: str, seed: int = 0, ids: list[str] | None = None,
                     log: Callable[[str], None] = lambda _m: None) -> dict[str, Path]:
    """Write (once) the synthetic suite under ``root``; returns dataset id -> folder."""
    out: dict[str, Path] = {}
    for cls in synthetic_datasets():
        if ids is not None and cls.meta.id not in ids:
            continue
        target = root / cls.meta.id
        if not marker_matches(target, cls, size, seed):
            if target.exists():
                log(f"synthetic {cls.meta.id} at {target} was written by another version of "
                    f"its writer; writing it again ({cls.meta.version}, {size})")
                shutil.rmtree(target)
            else:
                log(f"writing synthetic {cls.meta.id} ({size}) to {target}")
            cls.write_synthetic(target, size=size, seed=seed)
            atomic.write_json(target / MARKER, {"dataset": cls.meta.id,
                                                "version": cls.meta.version, "size": size,
                                                "seed": seed})
        out[cls.meta.id] = target
    return out


__all__ = ["MARKER", "ensure_synthetic", "has_synthetic_writer", "marker_matches",
           "synthetic_datasets"]
