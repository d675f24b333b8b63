"""Decoding at scale: the streamed ``.npy`` writer, one decode pass for several (size, fps)
variants, bounded memory on a long video, and ``ssl-bench data prepare --jobs`` giving the
same bytes as the serial decode. Videos are written here with PyAV from seeded noise."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from ssl_bench.cache import NpyWriter
from ssl_bench.cli import cli
from ssl_bench.commands import data as data_command
from ssl_bench.default_plugins.datasets import video as video_module
from ssl_bench.default_plugins.datasets.cholec80 import PHASES, Cholec80
from ssl_bench.default_plugins.datasets.video import FrameCache, decode_video, kept_count
from ssl_bench.errors import DataError


def write_noise_video(path: Path, n_frames: int, width: int, height: int, seed: int) -> None:
    """H.264 at 25 fps; every frame different (seeded noise on a moving gradient), so a frame
    taken from the wrong index or converted differently shows."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 180, width, dtype=np.float32)[None, :, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast", "threads": "1"}
        for i in range(n_frames):
            noise = rng.integers(0, 60, size=(height, width, 3)).astype(np.float32)
            frame = np.clip(np.roll(ramp, i, axis=1) + noise + (i % 25), 0, 255).astype(np.uint8)
            frame = np.ascontiguousarray(np.broadcast_to(frame, (height, width, 3)))
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def reference_decode(path: Path, step: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Written independently of the reader: every ``step``-th 25-fps frame, converted with
    PyAV's per-frame ``to_ndarray`` and squashed with OpenCV's area interpolation."""
    frames, ids = [], []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % step == 0:
                rgb = frame.to_ndarray(format="rgb24")
                frames.append(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA))
                ids.append(i)
    return np.stack(frames), np.asarray(ids)


@pytest.fixture(scope="module")
def noise_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Cholec80-layout folder with 3 noise videos of different lengths at 40x24."""
    root = tmp_path_factory.mktemp("noise-cholec80")
    (root / "phase_annotations").mkdir()
    for number, n_frames in ((1, 160), (2, 60), (41, 110)):
        name = f"video{number:02d}"
        write_noise_video(root / "videos" / f"{name}.mp4", n_frames, 40, 24, seed=number)
        rows = ["Frame\tPhase"] + [f"{f}\t{PHASES[0]}" for f in range(n_frames)]
        (root / "phase_annotations" / f"{name}-phase.txt").write_text("\n".join(rows) + "\n")
    return root


def test_npy_writer_round_trips_whatever_the_expected_count(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, size=(7, 4, 5, 3), dtype=np.uint8)
    for expected in (0, 3, 7, 50):  # unknown, too few, exact, too many
        path = tmp_path / f"frames-{expected}.npy"
        with NpyWriter(path, (4, 5, 3), np.uint8, expected) as out:
            for row in rows:
                out.append(row)
        assert path.stat().st_size == NpyWriter.HEADER_BYTES + rows.nbytes
        np.testing.assert_array_equal(np.load(path, mmap_mode="r"), rows)
    ids = tmp_path / "ids.npy"
    with NpyWriter(ids, (), np.int64, 2) as out:
        for i in (0, 25, 50):
            out.append(np.int64(i))
    loaded = np.load(ids)
    assert loaded.dtype == np.int64 and loaded.tolist() == [0, 25, 50]
    with pytest.raises(ValueError, match="row of shape"):
        with NpyWriter(tmp_path / "bad.npy", (2,), np.uint8) as out:
            out.append(np.zeros(3, np.uint8))


def test_one_pass_fills_every_variant_like_the_reference(noise_root: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    video = noise_root / "videos" / "video01.mp4"  # 160 frames
    passes = []
    decode_frames = video_module.decode_frames

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        passes.append(args[0])
        return decode_frames(*args, **kwargs)

    monkeypatch.setattr(video_module, "decode_frames", counted)
    cache = FrameCache(tmp_path / "frames")
    variants = [(8, 1.0), (16, 1.0), (16, 5.0), (12, 25.0)]
    cache.fill(video, variants, 25.0)
    assert len(passes) == 1  # one decode pass for the four variants
    for size, fps in variants:
        frames, ids = cache.load(video, fps, size)
        ref_frames, ref_ids = reference_decode(video, int(25 / fps), size)
        assert ids.tolist() == ref_ids.tolist()
        np.testing.assert_array_equal(np.asarray(frames), ref_frames)
        in_memory, in_memory_ids = decode_video(video, fps, size)
        np.testing.assert_array_equal(np.asarray(frames), in_memory)
        assert len(ids) == kept_count(160, 25.0, fps)
    assert len(passes) == 1 + len(variants)  # the in-memory decodes above; the loads hit
    assert cache.hits == len(variants) and cache.misses == 1
    cache.fill(video, variants, 25.0)  # all cached: nothing decoded
    assert len(passes) == 1 + len(variants)


def test_decoding_memory_does_not_grow_with_video_length(tmp_path: Path) -> None:
    size = 64
    peaks = {}
    for n_frames in (200, 800):  # 8 s and 32 s at 25 fps, every frame kept
        video = tmp_path / f"video-{n_frames}.mp4"
        write_noise_video(video, n_frames, size, size, seed=n_frames)
        cache = FrameCache(tmp_path / f"frames-{n_frames}")
        tracemalloc.start()
        try:
            cache.fill(video, [(size, 25.0)], 25.0)
            peaks[n_frames] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(cache.load(video, 25.0, size)[0]) == n_frames
    frame_bytes = size * size * 3
    long_output = 800 * frame_bytes  # 9.8 MB of frames
    # a few frames on top of the 1 MiB read that fingerprints the file: not the video
    assert peaks[800] < 2 ** 20 + 40 * frame_bytes < long_output / 6, peaks
    assert peaks[800] < peaks[200] + 20 * frame_bytes, peaks  # 4x the video, same memory
    # the measurement sees numpy's buffers: holding the whole video in memory shows
    tracemalloc.start()
    try:
        decode_video(tmp_path / "video-800.mp4", 25.0, size)
        whole = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert whole > long_output


def prepare(args: list[str], cache: Path, monkeypatch: pytest.MonkeyPatch) -> "object":
    monkeypatch.setenv("SSL_BENCH_CACHE", str(cache))
    return CliRunner().invoke(cli, ["data", "prepare", *args])


def test_prepare_jobs_gives_the_serial_bytes(noise_root: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["cholec80", str(noise_root), "--size", "16", "--size", "8", "--fps", "1",
            "--fps", "5"]
    parallel = prepare([*args, "--jobs", "2"], tmp_path / "parallel", monkeypatch)
    assert parallel.exit_code == 0, parallel.output
    assert "3/3 videos, 330/330 frames" in parallel.output  # the plain progress line
    assert "3 units cached under" in parallel.output and "with 2 jobs" in parallel.output
    serial = prepare([*args, "--jobs", "1", "--quiet"], tmp_path / "serial", monkeypatch)
    assert serial.exit_code == 0 and serial.output == ""
    names = sorted(p.name for p in (tmp_path / "parallel" / "data" / "frames").iterdir())
    assert len(names) == 3 * 4 * 2 and not any(n.startswith(".tmp") for n in names)
    assert names == sorted(p.name for p in (tmp_path / "serial" / "data" / "frames").iterdir())
    for name in names:
        assert ((tmp_path / "parallel" / "data" / "frames" / name).read_bytes()
                == (tmp_path / "serial" / "data" / "frames" / name).read_bytes()), name
    dataset = Cholec80(noise_root, cache_dir=tmp_path / "parallel" / "data")
    unit = dataset.units()[2]  # video41, 110 frames
    data = dataset.load(unit, size=16, fps=5.0)
    assert dataset.frame_cache.misses == 0  # filled by prepare
    np.testing.assert_array_equal(np.asarray(data.frames),
                                  decode_video(dataset.video_path(unit), 5.0, 16)[0])
    again = prepare([*args, "--jobs", "2"], tmp_path / "parallel", monkeypatch)
    assert again.exit_code == 0 and "3 were already cached" in again.output
    # the seconds per decoded frame are kept for the estimates of `ssl-bench run`
    from ssl_bench.engine.rates import load_rates

    assert load_rates(tmp_path / "parallel" / "rates.json").decode["cholec80"] > 0


def test_estimate_counts_the_frames_and_bytes_a_video_still_needs(noise_root: Path,
                                                                   tmp_path: Path) -> None:
    from ssl_bench.engine.estimate import _unit_work

    dataset = Cholec80(noise_root, cache_dir=tmp_path)
    unit = dataset.units()[2]  # video41, 110 frames at 25 fps
    dataset.load(unit, size=16, fps=1.0)  # cached now
    # 16 px at 1 fps is cached; 8 px at 5 fps keeps ceil(110 * 5 / 25) = 22 frames
    assert _unit_work(dataset, unit, [(16, 1.0), (8, 5.0)]) == (110, 22 * (8 * 8 * 3 + 8))
    assert _unit_work(dataset, unit, [(16, 1.0)]) == (0, 0)


def test_prepare_names_a_broken_video_and_keeps_no_partial_entry(
        noise_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "c80"
    (root / "videos").mkdir(parents=True)
    (root / "phase_annotations").mkdir()
    for name in ("video01", "video02", "video41"):
        (root / "videos" / f"{name}.mp4").write_bytes(
            (noise_root / "videos" / f"{name}.mp4").read_bytes())
    args = ["cholec80", str(root), "--size", "8", "--jobs", "2", "--quiet"]
    frames = tmp_path / "cache" / "data" / "frames"

    # fails inside a worker, mid-video: the worker's one-line error reaches the command
    decode_frames = video_module.decode_frames

    def fails_midway(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        for n, item in enumerate(decode_frames(path, *args, **kwargs)):
            if path.name == "video02.mp4" and n == 1:
                raise DataError(f"{path}: video does not decode (test); re-encode it")
            yield item

    if data_command.worker_context().get_start_method() == "fork":  # children see the patch
        monkeypatch.setattr(video_module, "decode_frames", fails_midway)
        result = prepare(args, tmp_path / "cache", monkeypatch)
        assert isinstance(result.exception, DataError), result.output
        assert str(root / "videos" / "video02.mp4") in str(result.exception)
        assert "\n" not in str(result.exception)
        assert not any(p.name.startswith(".tmp") for p in frames.iterdir())
        assert not list(frames.glob("video02-*"))
        monkeypatch.undo()

    # a video whose container does not open fails before any work starts
    good = (noise_root / "videos" / "video41.mp4").read_bytes()
    bad = root / "videos" / "video41.mp4"
    bad.write_bytes(good[: len(good) // 2])  # truncated: the mp4 index is lost
    result = prepare(args, tmp_path / "cache2", monkeypatch)
    assert isinstance(result.exception, DataError), result.output
    assert str(bad) in str(result.exception) and "\n" not in str(result.exception)
    assert not (tmp_path / "cache2" / "data" / "frames").exists()


def test_progress_lines_count_units_frames_and_eta() -> None:
    lines: list[str] = []
    progress = data_command.PrepareProgress("preparing x", 2, 100, "videos", "frames", "lines",
                                            every_s=0.0, echo=lines.append)
    with progress:
        progress.advance(40)
        progress.unit_done()
        progress.advance(60)
        progress.unit_done()
    assert lines[0] == "preparing x: 2 videos, 100 frames to do"
    assert lines[1].startswith("preparing x: 0/2 videos, 40/100 frames, ")
    assert " frames/s, ETA 0:00:0" in lines[1]  # 60 frames left at the rate so far
    assert lines[-1].startswith("preparing x: 2/2 videos, 100/100 frames, ")
    assert lines[-1].endswith("ETA 0:00:00")
    quiet: list[str] = []
    with data_command.PrepareProgress("x", 1, 1, "units", "units", "quiet",
                                      echo=quiet.append) as silent:
        silent.advance(1)
        silent.unit_done()
    assert quiet == []
