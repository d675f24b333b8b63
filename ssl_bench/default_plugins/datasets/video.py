"""Video decoding with PyAV and the on-disk frame cache.

Decoding: every frame of the first video stream is decoded in order (mp4 inter-frame coding
needs that); frame ``i`` (0-based count of decoded frames) is kept when it is the first frame at
or after ``round(k * native_fps / fps)`` for ``k = 0, 1, ...``. At 25 fps and ``fps=1`` the kept
frame ids are 0, 25, 50, ..., the 25-fps frame indices that Cholec80's 1-fps loaders use
(TMRNet ``get_paths_labels.py``: ``frame % 25 == 0``; DATASETS.md section 1). Kept frames are
squashed to ``size`` x ``size`` (see :mod:`.images`).

Cache: the kept frames of one (video, fps, size) are one ``.npy`` under
``<cache_dir>/frames/`` (read back with ``mmap_mode="r"``), keyed by a content fingerprint of
the file (byte size + sha256 of its first and last MiB), so a renamed or touched file still
hits and an edited one misses. The frame ids go to a sidecar ``.ids.npy`` written *before*
the frames; both are written atomically (temporary name, then rename), and the frames file
is the commit marker, so a reader never sees a half-written entry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ssl_bench import atomic
from ssl_bench.default_plugins.datasets.images import squash_rgb
from ssl_bench.errors import DataError

CHUNK = 1 << 20


def content_fingerprint(path: Path) -> str:
    """Byte size + sha256 of the first and last MiB: cheap, and changes when the file does."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(CHUNK))
        if size > CHUNK:
            fh.seek(max(CHUNK, size - CHUNK))
            digest.update(fh.read(CHUNK))
    return digest.hexdigest()[:20]


def decode_video(path: Path, fps: float, size: int, native_fps: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``path`` at ``fps`` into ((T, size, size, 3) uint8 frames, (T,) int64 frame ids).

    ``native_fps`` is used when the container does not state a frame rate."""
    import av  # imported here: reading a filled frame cache needs no FFmpeg

    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    frames: list[np.ndarray] = []
    ids: list[int] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream; re-download the video")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            native = float(rate) if rate else native_fps
            if not native:
                raise DataError(f"{path}: the container states no frame rate")
            step = native / fps
            k = 0
            for i, frame in enumerate(container.decode(stream)):
                if i >= round(k * step):
                    frames.append(squash_rgb(frame.to_ndarray(format="rgb24"), size))
                    ids.append(i)
                    k += 1
                    while round(k * step) <= i:  # fps above the native rate: no repeats
                        k += 1
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: video file is missing; restore it from the dataset archive"
                        ) from None
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: video does not decode ({reason}); re-download or re-encode "
                        "it") from None
    if not frames:
        raise DataError(f"{path}: video has no decodable frames; re-download or re-encode it")
    return np.stack(frames), np.asarray(ids, dtype=np.int64)


class FrameCache:
    """Decoded 1-fps (or any fps) frames of videos, one ``.npy`` per (content, fps, size)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def path_for(self, video: Path, fps: float, size: int) -> Path:
        key = f"{video.stem}-{content_fingerprint(video)}-fps{fps:g}-{size}px"
        return self.root / f"{key}.npy"

    def load(self, video: Path, fps: float, size: int, native_fps: float | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """(frames as a read-only memmap, frame ids); decodes and stores on a miss."""
        if not video.is_file():
            raise DataError(f"{video}: video file is missing; restore it from the dataset archive")
        path = self.path_for(video, fps, size)
        ids_path = path.with_suffix(".ids.npy")
        if path.exists() and ids_path.exists():
            try:
                frames = np.load(path, mmap_mode="r")
                ids = np.load(ids_path)
                if len(frames) == len(ids):
                    self.hits += 1
                    return frames, ids
            except (OSError, ValueError):
                pass  # unreadable entry: decode again and overwrite it
        self.misses += 1
        frames, ids = decode_video(video, fps, size, native_fps)
        atomic.write_with(ids_path, lambda tmp: _save(tmp, ids))
        atomic.write_with(path, lambda tmp: _save(tmp, frames))
        return np.load(path, mmap_mode="r"), ids


def _save(tmp: Path, array: np.ndarray) -> None:
    with open(tmp, "wb") as fh:  # a file object: np.save would append ".npy" to a bare path
        np.save(fh, array, allow_pickle=False)
