"""Cholec80 and M2CAI16-workflow readers on tiny fixtures written here from the spec
(DATASETS.md sections 1-2), the frame cache, and the bad-input errors."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from ssl_bench.default_plugins.datasets import video as video_module
from ssl_bench.default_plugins.datasets.cholec80 import PHASES, TOOLS, Cholec80
from ssl_bench.default_plugins.datasets.m2cai16 import PHASES as M2CAI_PHASES
from ssl_bench.default_plugins.datasets.m2cai16 import M2CAI16Workflow
from ssl_bench.errors import DataError


def level(frame_index: int) -> int:
    """Grey level of fixture frame i: 20 on every 25th frame, brighter in between."""
    return 20 + 8 * (frame_index % 25)


def write_video(path: Path, n_frames: int, size: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "ultrafast"}
        for i in range(n_frames):
            frame = np.full((size, size, 3), level(i), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def phase_rows(lengths: list[int], names: tuple[str, ...]) -> list[str]:
    rows, frame = [], 0
    for phase, length in enumerate(lengths):
        for _ in range(length):
            rows.append(f"{frame}\t{names[phase]}")
            frame += 1
    return rows


@pytest.fixture(scope="module")
def cholec_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cholec80")
    for number in (1, 35, 41, 50):
        name = f"video{number:02d}"
        write_video(root / "videos" / f"{name}.mp4", 75)  # 3 s at 25 fps
        rows = ["Frame\tPhase", *phase_rows([30, 30, 15], PHASES)]
        (root / "phase_annotations").mkdir(exist_ok=True)
        (root / "phase_annotations" / f"{name}-phase.txt").write_text("\n".join(rows) + "\n")
        tools = ["Frame\t" + "\t".join(TOOLS), "0\t1\t0\t0\t0\t0\t0\t0", "25\t1\t0\t1\t0\t0\t0\t0",
                 "50\t0\t0\t0\t0\t1\t0\t0"]
        (root / "tool_annotations").mkdir(exist_ok=True)
        (root / "tool_annotations" / f"{name}-tool.txt").write_text("\n".join(tools) + "\n")
    return root


def test_cholec80_units_and_splits(cholec_root: Path, tmp_path: Path) -> None:
    units = Cholec80(cholec_root, cache_dir=tmp_path).units()
    assert [(u.id, u.split, u.source) for u in units] == [
        ("video01", "train", "cholec80/video01"), ("video35", "train", "cholec80/video35"),
        ("video41", "val", "cholec80/video41"), ("video50", "test", "cholec80/video50")]
    splits = [u.split for u in Cholec80(cholec_root, {"split": "40/40"}, tmp_path).units()]
    assert splits == ["train", "val", "test", "test"]


def test_cholec80_load_at_1fps(cholec_root: Path, tmp_path: Path) -> None:
    dataset = Cholec80(cholec_root, cache_dir=tmp_path)
    data = dataset.load(dataset.units()[0], size=16)
    assert data.frames.shape == (3, 16, 16, 3) and data.frames.dtype == np.uint8
    assert data.frame_ids.tolist() == [0, 25, 50]
    assert data.phases.tolist() == [0, 0, 1]  # rows 0, 25, 50 of the phase file
    assert data.fps == 1.0
    # the sampled frames are the 0-mod-25 ones (grey level 20), not their neighbours (>= 28)
    assert np.abs(data.frames.reshape(3, -1).mean(axis=1) - level(0)).max() < 4
    fast = dataset.load(dataset.units()[0], size=8, fps=5.0)
    assert fast.frame_ids.tolist() == list(range(0, 75, 5))
    assert fast.phases.tolist() == [0] * 6 + [1] * 6 + [2] * 3
    frames, tools = dataset.tools(dataset.units()[0])
    assert frames.tolist() == [0, 25, 50] and tools[1].tolist() == [1, 0, 1, 0, 0, 0, 0]
    assert dataset.check() == []
    info = dataset.info()
    assert info["units"] == {"train": 2, "val": 1, "test": 1}
    assert info["annotated_frames"]["train"] == 150


ROWS = {0: [1, 0, 0, 0, 0, 0, 0], 25: [1, 0, 1, 0, 0, 0, 0], 50: [0, 0, 0, 0, 1, 0, 0]}


def test_cholec80_tool_labels_align_with_the_loaded_frames(cholec_root: Path,
                                                            tmp_path: Path) -> None:
    """Each frame takes the nearest tool row within half the row spacing (12 of 25 frames);
    frames no row is that close to are unannotated (255)."""
    dataset = Cholec80(cholec_root, cache_dir=tmp_path)
    assert dataset.meta.tools == TOOLS
    unit = dataset.units()[0]
    data = dataset.load(unit, size=16)  # 1 fps: frames 0, 25, 50 are the annotated ones
    assert data.tools.dtype == np.uint8 and data.tools.shape == (3, 7)
    assert data.tools.tolist() == [ROWS[0], ROWS[25], ROWS[50]]
    fast = dataset.load(unit, size=8, fps=5.0)  # frames 0, 5, ..., 70
    nearest = {0: 0, 5: 0, 10: 0, 15: 25, 20: 25, 25: 25, 30: 25, 35: 25, 40: 50, 45: 50,
               50: 50, 55: 50, 60: 50}
    expected = [ROWS[nearest[f]] if f in nearest else [255] * 7 for f in range(0, 75, 5)]
    assert fast.tools.tolist() == expected  # 65 and 70 are 15 and 20 frames past row 50


def test_align_tool_rows_ties_and_gaps() -> None:
    from ssl_bench.default_plugins.datasets.phase_video import align_tool_rows

    presence = np.array([[1, 0], [0, 1], [1, 1]], np.uint8)
    rows = np.array([0, 10, 40])
    out = align_tool_rows(rows, presence, np.array([0, 5, 6, 15, 16, 25, 35, 45, 46]), 10)
    assert out.tolist() == [[1, 0], [1, 0], [0, 1], [0, 1], [255, 255], [255, 255], [1, 1],
                            [1, 1], [255, 255]]  # 5: a tie, the earlier row; 16-34: no row
    assert align_tool_rows(rows[:0], presence[:0], np.array([0, 25]), 25).tolist() == [
        [255, 255], [255, 255]]


def test_cholec80_without_tool_file_has_no_tool_labels(cholec_root: Path,
                                                       tmp_path: Path) -> None:
    root = tmp_path / "c80"
    (root / "videos").mkdir(parents=True)
    (root / "phase_annotations").mkdir()
    for sub in ("videos/video01.mp4", "phase_annotations/video01-phase.txt"):
        (root / sub).write_bytes((cholec_root / sub).read_bytes())
    dataset = Cholec80(root, cache_dir=tmp_path / "cache")
    assert dataset.load(dataset.units()[0], size=8).tools is None


def test_tool_rows_out_of_order_name_file_and_line(tmp_path: Path) -> None:
    from ssl_bench.default_plugins.datasets.phase_video import read_tool_file

    path = tmp_path / "video01-tool.txt"
    path.write_text("Frame\t" + "\t".join(TOOLS) + "\n0\t1\t0\t0\t0\t0\t0\t0\n"
                    "25\t1\t0\t0\t0\t0\t0\t0\n25\t0\t0\t0\t0\t0\t0\t0\n")
    with pytest.raises(DataError, match="increasing frame order") as exc:
        read_tool_file(path, TOOLS)
    assert f"{path}:4:" in one_line(exc)


def test_frame_cache_hit_decodes_nothing(cholec_root: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = Cholec80(cholec_root, cache_dir=tmp_path)
    unit = dataset.units()[0]
    first = np.array(dataset.load(unit, size=16).frames)

    def no_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded although the frame cache holds the frames")

    monkeypatch.setattr(video_module, "decode_frames", no_decode)
    again = Cholec80(cholec_root, cache_dir=tmp_path)  # a second run: fresh reader
    data = again.load(unit, size=16)
    assert isinstance(data.frames, np.memmap) and not data.frames.flags.writeable
    np.testing.assert_array_equal(np.asarray(data.frames), first)
    assert again.frame_cache.hits == 1 and again.frame_cache.misses == 0
    cached = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert len(cached) == 2 and all(not n.startswith(".tmp") for n in cached)


def test_frame_cache_never_keeps_a_half_written_entry(cholec_root: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = Cholec80(cholec_root, cache_dir=tmp_path)
    unit = dataset.units()[0]

    calls = []
    squash = video_module.squash_rgb

    def crash(image: np.ndarray, size: int) -> np.ndarray:
        calls.append(size)
        if len(calls) == 2:  # killed mid-stream: frame 0 is already on disk
            raise KeyboardInterrupt
        return squash(image, size)

    monkeypatch.setattr(video_module, "squash_rgb", crash)
    with pytest.raises(KeyboardInterrupt):
        dataset.load(unit, size=16)
    assert len(calls) == 2
    assert not any((tmp_path / "frames").iterdir())
    monkeypatch.undo()
    assert dataset.load(unit, size=16).frames.shape == (3, 16, 16, 3)
    assert dataset.frame_cache.misses == 2


def one_line(exc: pytest.ExceptionInfo[DataError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_corrupt_mp4_names_the_file(cholec_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "c80"
    (root / "videos").mkdir(parents=True)
    (root / "phase_annotations").mkdir()
    good = (cholec_root / "videos" / "video01.mp4").read_bytes()
    bad = root / "videos" / "video01.mp4"
    bad.write_bytes(good[: len(good) // 2])  # truncated: the mp4 index is lost
    (root / "phase_annotations" / "video01-phase.txt").write_text(
        "Frame\tPhase\n" + "\n".join(phase_rows([75], PHASES)) + "\n")
    dataset = Cholec80(root, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError) as exc:
        dataset.load(dataset.units()[0], size=16)
    assert str(bad) in one_line(exc) and "does not decode" in str(exc.value)
    problems = dataset.check()
    assert len(problems) == 1 and str(bad) in problems[0]
    assert not list((tmp_path / "cache" / "frames").glob("*.npy"))


def test_malformed_phase_line_names_file_and_line(cholec_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "c80"
    (root / "videos").mkdir(parents=True)
    (root / "phase_annotations").mkdir()
    (root / "tool_annotations").mkdir()
    good = (cholec_root / "videos" / "video01.mp4").read_bytes()
    (root / "videos" / "video02.mp4").write_bytes(good)
    phase_file = root / "phase_annotations" / "video02-phase.txt"
    phase_file.write_text("Frame\tPhase\n0\tPreparation\n1 Preparation extra\n")
    tool_file = root / "tool_annotations" / "video02-tool.txt"
    tool_file.write_text("Frame\t" + "\t".join(TOOLS) + "\n0\t1\t0\t0\n")
    dataset = Cholec80(root, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError) as exc:
        dataset.load(dataset.units()[0], size=16)
    assert f"{phase_file}:3:" in one_line(exc)
    problems = dataset.check()
    assert any(f"{phase_file}:3:" in p for p in problems)
    assert any(f"{tool_file}:2:" in p for p in problems)
    assert all("\n" not in p for p in problems)
    phase_file.write_text("Frame\tPhase\n0\tPreparation\n1\tLunch\n")
    dataset = Cholec80(root, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="unknown phase 'Lunch'"):
        dataset.load(dataset.units()[0], size=16)


def test_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    with pytest.raises(DataError) as exc:
        Cholec80(tmp_path, cache_dir=tmp_path / "cache").units()
    assert str(tmp_path / "phase_annotations") in one_line(exc)
    assert Cholec80(tmp_path, cache_dir=tmp_path / "cache").check() == [str(exc.value)]


def test_m2cai16_workflow(tmp_path: Path) -> None:
    root = tmp_path / "m2cai16"
    layout = {"train_dataset": ["workflow_video_01", "workflow_video_25"],
              "test_dataset": ["test_workflow_video_01"]}
    for folder, names in layout.items():
        for name in names:
            write_video(root / folder / f"{name}.mp4", 50)
            rows = ["Frame\tPhase", *phase_rows([20, 20, 10], M2CAI_PHASES)]
            (root / folder / f"{name}.txt").write_text("\n".join(rows) + "\n")
    dataset = M2CAI16Workflow(root, cache_dir=tmp_path / "cache")
    units = dataset.units()
    assert [(u.id, u.split) for u in units] == [
        ("workflow_video_01", "train"), ("workflow_video_25", "val"),
        ("test_workflow_video_01", "test")]
    data = dataset.load(units[2], size=8)
    assert data.frames.shape == (2, 8, 8, 3)
    assert data.phases.tolist() == [0, 1]  # frames 0 and 25
    assert dataset.meta.relaxed_phase_groups == ((4, 5), (6, 7))
    assert len(dataset.meta.classes) == 8
    assert dataset.check() == []
