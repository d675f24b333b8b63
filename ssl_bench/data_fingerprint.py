"""The fingerprint of a dataset folder: what a dataset's content is, whatever machine holds it.

A cell's identity, a pretraining pool's key and a feature cache key carry the fingerprint of
the data they read, so two runs are compared, merged or resumed only when their data are the
same. It must therefore depend on the files' content and layout and on nothing local to one
copy: not modification times (a ``cp``, an ``rsync`` without ``-t``, an unpacked archive or a
freshly written synthetic suite all give new mtimes to identical bytes), not the folder's
absolute path.

Reading every byte of a real dataset (Cholec80 is ~70 GB of video, CholecSeg8k ~24,000 files)
each time a run starts is too slow, so each file contributes its relative path, its size and a
SHA-256 of its first and last :data:`SAMPLE_BYTES` bytes (the whole file when it is at most
twice that). An edit that keeps a large file's size and leaves both ends alone goes unseen; an
edit that changes the size, a header, a small annotation or manifest file, or which files
exist changes the fingerprint. Synthetic files are small, so the suite is fingerprinted in
full up to the sample size.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: bytes read from each end of a file
SAMPLE_BYTES = 4096


def file_sample_digest(path: Path, size: int, sample_bytes: int = SAMPLE_BYTES,
                       prefix: bytes = b"") -> str:
    """SHA-256 of ``prefix`` and the file's first and last ``sample_bytes`` (all of it when it
    is at most twice that). The video frame caches key their files with it too, sampling a
    MiB (:func:`ssl_bench.default_plugins.datasets.video.content_fingerprint`)."""
    digest = hashlib.sha256(prefix)
    with open(path, "rb") as fh:  # never more than sample_bytes in memory at once
        digest.update(fh.read(sample_bytes))
        if size > sample_bytes:
            fh.seek(max(sample_bytes, size - sample_bytes))
            digest.update(fh.read(sample_bytes))
    return digest.hexdigest()


def tree_fingerprint(root: Path, salt: str = "") -> str:
    """16 hex digits over ``salt`` and, for every file under ``root`` in path order, its path
    relative to ``root`` (POSIX form), its size and :func:`file_sample_digest`."""
    root = Path(root)
    h = hashlib.sha256(salt.encode())
    files = sorted((p for p in root.rglob("*") if p.is_file()),
                   key=lambda p: p.relative_to(root).as_posix())
    for path in files:
        size = path.stat().st_size
        h.update(f"{path.relative_to(root).as_posix()}\0{size}\0"
                 f"{file_sample_digest(path, size)}\n".encode())
    return h.hexdigest()[:16]
