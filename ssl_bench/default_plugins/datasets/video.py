"""Video decoding with PyAV and the on-disk frame cache.

Decoding: every frame of the first video stream is decoded in order (mp4 inter-frame coding
needs that); frame ``i`` (0-based count of decoded frames) is kept when it is the first frame at
or after ``round(k * native_fps / fps)`` for ``k = 0, 1, ...``. At 25 fps and ``fps=1`` the kept
frame ids are 0, 25, 50, ..., the 25-fps frame indices that Cholec80's 1-fps loaders use
(TMRNet ``get_paths_labels.py``: ``frame % 25 == 0``; DATASETS.md section 1). Kept frames are
squashed to ``size`` x ``size`` (see :mod:`.images`).

One decode pass serves several (size, fps) variants: each frame is decoded once, converted to
RGB once when any rate keeps it, and squashed once per size. Conversion reuses one swscale
context per pass (a fresh one per frame, what ``frame.to_ndarray(format="rgb24")`` sets up,
was 4-8x slower on small frames); the pixels are the same.

Cache: the kept frames of one (video, fps, size) are one ``.npy`` under
``<cache_dir>/frames/`` (read back with ``mmap_mode="r"``), keyed by a content fingerprint of
the file (byte size + sha256 of its first and last MiB), so a renamed or touched file still
hits and an edited one misses. Frames are streamed to disk as they are decoded
(:class:`ssl_bench.cache.NpyWriter`, preallocated for the frame count the container states):
memory holds a few frames whatever the video's length. The frame ids go to a sidecar
``.ids.npy``, streamed the same way and renamed into place *before* the frames; both are
written under temporary names and renamed only when complete, and the frames file is the
commit marker, so a reader never sees a half-written entry.
"""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, Sequence

import numpy as np

from ssl_bench import atomic
from ssl_bench.cache import NpyWriter
from ssl_bench.data_fingerprint import file_sample_digest
from ssl_bench.default_plugins.datasets.images import squash_rgb
from ssl_bench.errors import DataError

CHUNK = 1 << 20
#: decoded frames between two calls of a decode pass's ``progress`` callback
PROGRESS_EVERY = 250


def content_fingerprint(path: Path) -> str:
    """Byte size + sha256 of the first and last MiB: cheap, and changes when the file does."""
    size = path.stat().st_size
    return file_sample_digest(path, size, CHUNK, prefix=str(size).encode())[:20]


class FrameSampler:
    """The kept-frame rule at one rate: frame ``i`` is kept when it is the first frame at or
    after ``round(k * step)`` (``step`` = native fps / fps) for ``k = 0, 1, ...``; above the
    native rate every frame is kept once (no repeats)."""

    def __init__(self, native_fps: float, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.step = native_fps / fps
        self.k = 0
        self.next = 0  # round(k * step)

    def keeps(self, i: int) -> bool:
        if i < self.next:
            return False
        self.k += 1
        while round(self.k * self.step) <= i:
            self.k += 1
        self.next = round(self.k * self.step)
        return True


def kept_count(n_frames: int, native_fps: float, fps: float) -> int:
    """How many of ``n_frames`` decoded frames the rule keeps at ``fps``."""
    sampler = FrameSampler(native_fps, fps)
    return sum(1 for i in range(n_frames) if sampler.keeps(i))


def _video_errors(path: Path) -> Any:
    """Turn FFmpeg / file errors while reading ``path`` into one-line :class:`DataError`s."""
    import av

    @contextlib.contextmanager
    def guard() -> Iterator[None]:
        try:
            yield
        except DataError:
            raise
        except FileNotFoundError:
            raise DataError(f"{path}: video file is missing; restore it from the dataset "
                            "archive") from None
        except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"{path}: video does not decode ({reason}); re-download or "
                            "re-encode it") from None

    return guard()


def _first_video_stream(container: Any, path: Path, native_fps: float | None) -> tuple[Any, float]:
    if not container.streams.video:
        raise DataError(f"{path}: no video stream; re-download the video")
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    native = float(rate) if rate else native_fps
    if not native:
        raise DataError(f"{path}: the container states no frame rate")
    return stream, native


def video_frame_count(path: Path, native_fps: float | None = None) -> tuple[int, float]:
    """(frames the container states for the first video stream, 0 when it states none or only
    a duration it cannot be trusted for; its native frame rate). Reads the header only."""
    import av

    with _video_errors(path), av.open(str(path)) as container:
        stream, native = _first_video_stream(container, path, native_fps)
        frames = int(stream.frames or 0)
        if frames == 0 and stream.duration and stream.time_base:
            frames = int(round(float(stream.duration * stream.time_base) * native))
        return frames, native


def decode_frames(path: Path, rates: Sequence[float], native_fps: float | None = None,
                  threads: int = 0, progress: Callable[[int], None] | None = None
                  ) -> Generator[tuple[int, np.ndarray, tuple[bool, ...]], None, None]:
    """One decode pass over ``path``: yields (frame id, (H, W, 3) uint8 RGB frame, which of
    ``rates`` keep it) for every frame that at least one rate keeps, in order.

    ``threads``: FFmpeg decoding threads (0: FFmpeg's choice). ``progress(n)`` is called
    with the number of frames decoded since its last call (every ``PROGRESS_EVERY`` frames and
    at the end). Close the generator (``contextlib.closing``) when stopping early."""
    import av  # imported here: reading a filled frame cache needs no FFmpeg
    from av.video.reformatter import VideoReformatter

    for fps in rates:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
    with _video_errors(path), av.open(str(path)) as container:
        stream, native = _first_video_stream(container, path, native_fps)
        stream.thread_type = "AUTO"
        if threads:
            stream.codec_context.thread_count = threads
        samplers = [FrameSampler(native, fps) for fps in rates]
        to_rgb = VideoReformatter()
        decoded = 0
        for i, frame in enumerate(container.decode(stream)):
            keeps = tuple(sampler.keeps(i) for sampler in samplers)
            if any(keeps):
                yield i, to_rgb.reformat(frame, format="rgb24").to_ndarray(), keeps
            decoded += 1
            if progress is not None and decoded == PROGRESS_EVERY:
                progress(decoded)
                decoded = 0
        if progress is not None and decoded:
            progress(decoded)


def decode_video(path: Path, fps: float, size: int, native_fps: float | None = None,
                 threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``path`` at ``fps`` into ((T, size, size, 3) uint8 frames, (T,) int64 frame ids),
    in memory (the whole video at once: for short clips and measurements; the frame cache
    streams instead).

    ``native_fps`` is used when the container does not state a frame rate."""
    frames: list[np.ndarray] = []
    ids: list[int] = []
    with contextlib.closing(decode_frames(path, [fps], native_fps, threads)) as kept:
        for i, rgb, _keeps in kept:
            frames.append(squash_rgb(rgb, size))
            ids.append(i)
    if not frames:
        raise DataError(f"{path}: video has no decodable frames; re-download or re-encode it")
    return np.stack(frames), np.asarray(ids, dtype=np.int64)


#: a (square frame size, frames per second) pair the frame cache can hold
Variant = tuple[int, float]


class FrameCache:
    """Decoded 1-fps (or any fps) frames of videos, one ``.npy`` per (content, fps, size)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def _prefix(self, video: Path) -> str:
        return f"{video.stem}-{content_fingerprint(video)}"

    def path_for(self, video: Path, fps: float, size: int) -> Path:
        return self.root / f"{self._prefix(video)}-fps{fps:g}-{size}px.npy"

    def _paths(self, video: Path, variants: Sequence[Variant]) -> dict[Variant, Path]:
        prefix = self._prefix(video)  # one fingerprint (2 MiB read) for all variants
        return {(size, fps): self.root / f"{prefix}-fps{fps:g}-{size}px.npy"
                for size, fps in variants}

    @staticmethod
    def _read(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """(frames memmap, ids) of a complete entry, or None (missing, torn or unreadable)."""
        ids_path = path.with_suffix(".ids.npy")
        if not (path.exists() and ids_path.exists()):
            return None
        try:
            frames = np.load(path, mmap_mode="r")
            ids = np.load(ids_path)
        except (OSError, ValueError):
            return None  # unreadable entry: decode again and overwrite it
        return (frames, ids) if len(frames) == len(ids) else None

    def missing(self, video: Path, variants: Sequence[Variant]) -> list[Variant]:
        """The variants of ``video`` the cache does not hold yet."""
        if not video.is_file():
            raise DataError(f"{video}: video file is missing; restore it from the dataset archive")
        return [v for v, path in self._paths(video, variants).items() if self._read(path) is None]

    def load(self, video: Path, fps: float, size: int, native_fps: float | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """(frames as a read-only memmap, frame ids); decodes and stores on a miss."""
        if not video.is_file():
            raise DataError(f"{video}: video file is missing; restore it from the dataset archive")
        path = self.path_for(video, fps, size)
        entry = self._read(path)
        if entry is not None:
            self.hits += 1
            return entry
        self.fill(video, [(size, fps)], native_fps)
        entry = self._read(path)
        if entry is None:
            raise DataError(f"{path}: frame cache entry unreadable right after writing it; "
                            "check the disk and the cache folder's permissions")
        return entry

    def fill(self, video: Path, variants: Sequence[Variant], native_fps: float | None = None,
             progress: Callable[[int], None] | None = None, threads: int = 0) -> None:
        """Decode ``video`` once and write every variant the cache does not hold yet, each
        streamed into its own preallocated ``.npy``; ``progress`` as in :func:`decode_frames`."""
        todo = self.missing(video, variants)
        if not todo:
            return
        self.misses += 1
        paths = self._paths(video, todo)
        rates = sorted({fps for _size, fps in todo})
        n_frames, native = video_frame_count(video, native_fps)
        try:
            self._write(video, todo, paths, rates, n_frames, native, progress, threads)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            need = sum(kept_count(n_frames, native, fps) * size * size * 3 for size, fps in todo)
            raise DataError(f"{self.root}: no space left on the device for the frame cache of "
                            f"{video.name} (about {need / 1e9:.1f} GB); free space or set "
                            "SSL_BENCH_CACHE to a larger disk") from None

    def _write(self, video: Path, todo: list[Variant], paths: dict[Variant, Path],
               rates: list[float], n_frames: int, native: float,
               progress: Callable[[int], None] | None, threads: int) -> None:
        with contextlib.ExitStack() as stack:
            writers: dict[Variant, tuple[NpyWriter, NpyWriter]] = {}
            for size, fps in todo:
                expected = kept_count(n_frames, native, fps)
                path = paths[(size, fps)]
                # entered first, left last: on success each variant's ids file is renamed
                # into place before its frames file (the commit marker); on an exception
                # every temporary file is removed
                frames_tmp = stack.enter_context(atomic.atomic_path(path))
                frames_out = stack.enter_context(
                    NpyWriter(frames_tmp, (size, size, 3), np.uint8, expected))
                ids_tmp = stack.enter_context(atomic.atomic_path(path.with_suffix(".ids.npy")))
                ids_out = stack.enter_context(NpyWriter(ids_tmp, (), np.int64, expected))
                writers[(size, fps)] = (frames_out, ids_out)
            rate_index = {fps: k for k, fps in enumerate(rates)}
            kept = stack.enter_context(contextlib.closing(
                decode_frames(video, rates, native, threads, progress)))
            for i, rgb, keeps in kept:
                squashed: dict[int, np.ndarray] = {}
                for (size, fps), (frames_out, ids_out) in writers.items():
                    if keeps[rate_index[fps]]:
                        if size not in squashed:
                            squashed[size] = squash_rgb(rgb, size)
                        frames_out.append(squashed[size])
                        ids_out.append(np.int64(i))
            if any(frames_out.rows == 0 for frames_out, _ids in writers.values()):
                raise DataError(f"{video}: video has no decodable frames; re-download or "
                                "re-encode it")
