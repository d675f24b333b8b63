"""A content-checked on-disk cache of named numpy arrays.

Each entry is one ``.npz`` file plus a ``.sha256`` sidecar written after it; an entry whose
checksum does not match (a torn write, a disk error) is treated as missing and recomputed.
Used for features (per checkpoint and dataset split) and decoded data.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Callable

import numpy as np

from ssl_bench import atomic


def _key_path(root: Path, key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:80]
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return root / f"{safe}-{digest}.npz"


class ArrayCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return _key_path(self.root, key)

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        path = self.path(key)
        sidecar = path.with_suffix(".sha256")
        if not path.exists() or not sidecar.exists():
            return None
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sidecar.read_text().strip():
            return None
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    def save(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        path = self.path(key)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        data = buf.getvalue()
        atomic.write_bytes(path, data)
        atomic.write_text(path.with_suffix(".sha256"), hashlib.sha256(data).hexdigest())

    def get_or_compute(self, key: str, compute: Callable[[], dict[str, np.ndarray]]
                       ) -> dict[str, np.ndarray]:
        cached = self.load(key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        arrays = compute()
        self.save(key, arrays)
        return arrays
