"""On-disk arrays for the caches: a content-checked cache of named numpy arrays, and a writer
that streams one ``.npy`` array to disk row by row.

:class:`ArrayCache`: each entry is one ``.npz`` file plus a ``.sha256`` sidecar written after
it; an entry whose checksum does not match (a torn write, a disk error) is treated as missing
and recomputed. Used for features (per checkpoint and dataset split) and decoded data.

:class:`NpyWriter`: an array too large to hold in memory (the kept frames of a long video) is
written as it is produced, so memory holds one row at a time. The file is a standard ``.npy``
(format 1.0, read back with ``np.load(..., mmap_mode="r")``); write it to a temporary path
(:func:`ssl_bench.atomic.atomic_path`) so that no reader sees it before it is complete.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import struct
from pathlib import Path
from types import TracebackType
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
        np.savez(buf, allow_pickle=True, **arrays)
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


class NpyWriter:
    """Write an ``.npy`` array of rows of one shape and dtype, one row at a time.

    The file starts with a fixed-size header slot (room for any row count), is preallocated
    for ``expected_rows`` rows (so a full disk fails at the start, not hours later), and rows
    are appended in order. On a clean exit the header is rewritten with the number of rows
    written and the file is cut to them, so a wrong ``expected_rows`` (a container that states
    a frame count it does not hold) costs nothing. On an exception the file is only closed:
    the caller's atomic temporary path removes it.

        with atomic.atomic_path(path) as tmp, NpyWriter(tmp, (64, 64, 3), np.uint8, 900) as out:
            for frame in frames:
                out.append(frame)
    """

    #: magic (6) + version (2) + header length (2) + the header dict padded with spaces to
    #: a multiple of 64 bytes (the .npy format 1.0 specification, NEP 1)
    HEADER_BYTES = 128

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype: np.dtype | type,
                 expected_rows: int = 0) -> None:
        self.path = Path(path)
        self.row_shape = tuple(int(n) for n in row_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self.rows = 0
        self._fh = open(self.path, "wb")
        try:
            self._fh.write(self._header(0))
            if expected_rows > 0:
                preallocate(self._fh.fileno(), self.HEADER_BYTES,
                            expected_rows * self.row_bytes)
        except BaseException:
            self._fh.close()
            raise

    def _header(self, rows: int) -> bytes:
        fields = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (rows, *self.row_shape)}
        text_len = self.HEADER_BYTES - 10
        text = repr(fields).ljust(text_len - 1) + "\n"
        if len(text) != text_len:
            raise ValueError(f"npy header of shape {fields['shape']} exceeds "
                             f"{self.HEADER_BYTES} bytes")
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", text_len) + text.encode("latin1")

    def append(self, row: np.ndarray | np.generic) -> None:
        row = np.asarray(row)
        if row.shape != self.row_shape:
            raise ValueError(f"{self.path}: row of shape {row.shape}, expected {self.row_shape}")
        self._fh.write(np.ascontiguousarray(row, dtype=self.dtype).tobytes())
        self.rows += 1

    def close(self) -> None:
        """Write the final header, cut the file to the rows written and close it."""
        if self._fh.closed:
            return
        self._fh.flush()
        self._fh.seek(0)
        self._fh.write(self._header(self.rows))
        self._fh.truncate(self.HEADER_BYTES + self.rows * self.row_bytes)
        self._fh.close()

    def __enter__(self) -> "NpyWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self._fh.close()


def preallocate(fd: int, offset: int, length: int) -> None:
    """Reserve ``length`` bytes of ``fd`` from ``offset`` where the file system supports it;
    a full disk raises ``OSError(ENOSPC)`` here."""
    if length <= 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, offset, length)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise
        # EOPNOTSUPP / EINVAL: the file system cannot reserve space; the file grows as written
