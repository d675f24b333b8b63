"""Atomic file writes: write to a temporary name in the same folder, fsync, rename.

A reader never sees a half-written file; a crash leaves at most a ``.tmp-*`` file that no
reader looks at.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path | str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path | str, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_with(path: Path | str, writer: Callable[[Path], None]) -> None:
    """Let ``writer`` fill a temporary file (e.g. ``np.save``), then rename it into place."""
    with atomic_path(path) as tmp:
        writer(tmp)


def to_bytes(writer: Callable[[io.BytesIO], None]) -> bytes:
    buf = io.BytesIO()
    writer(buf)
    return buf.getvalue()
