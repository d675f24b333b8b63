"""Shared parts of the phase-recognition video readers (Cholec80, M2CAI16-workflow).

Annotation format (DATASETS.md sections 1-2; TeCNO ``utils/tecno/create_dataframe.py`` reads
Cholec80's with ``sep='\\t'``): a header line, then one row per 25-fps frame,
``<0-based frame index><TAB><phase name>``. Rows must be consecutive from frame 0. Tool files
(Cholec80 only) are ``Frame`` + 7 tool columns of 0/1 at frames 0, 25, 50, ...

Labels of sampled frames: the phase of the annotation row with the same frame index. Frames
past the last annotated row (a video a few frames longer than its annotation) are dropped.

Tool labels of sampled frames (readers with tool files, :meth:`PhaseVideoDataset.tools_of`;
:func:`align_tool_rows`): each frame takes the tool row nearest to it in time (the earlier
row on an exact tie) when that row is at most half the row spacing away (12 frames for rows
every 25 frames); a frame no row is that close to is unannotated (255 in every column, left
out of tool training and scoring). At 1 fps the sampled frames are the annotated frames
0, 25, 50, ... themselves; at 5 fps frames 5 and 10 take row 0 and frames 15 and 20 row 25.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ssl_bench.api import SPLITS, Dataset, Unit, UnitData
from ssl_bench.default_plugins.datasets.video import (
    FrameCache,
    kept_count,
    video_frame_count,
)
from ssl_bench.errors import DataError


def read_phase_file(path: Path, names: tuple[str, ...]) -> np.ndarray:
    """(N,) int64 phase id per frame; a malformed line raises naming ``path:line``."""
    if not path.is_file():
        raise DataError(f"{path}: phase annotation file is missing; restore it from the "
                        "dataset archive")
    index = {name: i for i, name in enumerate(names)}
    phases: list[int] = []
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            if lineno == 1 and not parts[0].lstrip("-").isdigit():
                continue  # header, e.g. "Frame\tPhase"
            if len(parts) != 2 or not parts[0].isdigit():
                raise DataError(f"{path}:{lineno}: malformed annotation line {line.rstrip()!r}; "
                                "expected '<frame index><TAB><phase name>'")
            if int(parts[0]) != len(phases):
                raise DataError(f"{path}:{lineno}: frame {parts[0]} out of order, expected "
                                f"{len(phases)}; rows must be consecutive 25-fps frames")
            if parts[1] not in index:
                raise DataError(f"{path}:{lineno}: unknown phase {parts[1]!r}; expected one of "
                                f"{', '.join(names)}")
            phases.append(index[parts[1]])
    if not phases:
        raise DataError(f"{path}: no annotation rows; restore it from the dataset archive")
    return np.asarray(phases, dtype=np.int64)


def read_tool_file(path: Path, tools: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """((M,) frame indices, (M, len(tools)) uint8 presence); raises naming ``path:line``."""
    if not path.is_file():
        raise DataError(f"{path}: tool annotation file is missing; restore it from the "
                        "dataset archive")
    frames: list[int] = []
    rows: list[list[int]] = []
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            if lineno == 1:
                if parts != ["Frame", *tools]:
                    raise DataError(f"{path}:1: tool header {line.rstrip()!r} is not 'Frame' "
                                    f"and the columns {' '.join(tools)} (tab-separated)")
                continue
            if (len(parts) != len(tools) + 1 or not all(p.isdigit() for p in parts)
                    or any(p not in ("0", "1") for p in parts[1:])):
                raise DataError(f"{path}:{lineno}: malformed tool line {line.rstrip()!r}; "
                                f"expected a frame index and {len(tools)} values 0/1")
            if frames and int(parts[0]) <= frames[-1]:
                raise DataError(f"{path}:{lineno}: frame {parts[0]} is not after frame "
                                f"{frames[-1]}; tool rows must be in increasing frame order")
            frames.append(int(parts[0]))
            rows.append([int(p) for p in parts[1:]])
    presence = np.asarray(rows, dtype=np.uint8).reshape(-1, len(tools))
    return np.asarray(frames, dtype=np.int64), presence


def align_tool_rows(row_frames: np.ndarray, presence: np.ndarray, frame_ids: np.ndarray,
                    spacing: int) -> np.ndarray:
    """(T, K) uint8 tool presence of the frames ``frame_ids`` from rows at ``row_frames``
    (strictly increasing, as :func:`read_tool_file` checks).

    Each frame takes the nearest row (the earlier one on a tie) within ``spacing // 2``
    frames; other frames get 255 in every column."""
    rows = np.asarray(row_frames, dtype=np.int64)
    ids = np.asarray(frame_ids, dtype=np.int64)
    out = np.full((len(ids), presence.shape[1]), 255, dtype=np.uint8)
    if len(rows) == 0:
        return out
    if np.any(np.diff(rows) <= 0):
        raise ValueError("tool rows must be in strictly increasing frame order")
    after = np.clip(np.searchsorted(rows, ids, side="left"), 0, len(rows) - 1)
    before = np.clip(after - 1, 0, len(rows) - 1)
    use_before = np.abs(ids - rows[before]) <= np.abs(rows[after] - ids)
    nearest = np.where(use_before, before, after)
    close = np.abs(rows[nearest] - ids) <= spacing // 2
    out[close] = presence[nearest[close]]
    return out


class PhaseVideoDataset(Dataset):
    """A folder of videos with per-frame phase annotation files (and optional tool files)."""

    #: native frames between two rows of the tool files (Cholec80: 1-fps rows of 25-fps video)
    tool_row_spacing: int = 25

    def __init__(self, root: Path | str, options: Mapping[str, Any] | None = None,
                 cache_dir: Path | None = None) -> None:
        super().__init__(root, options, cache_dir)
        self.frame_cache = FrameCache(self.cache_dir / "frames")
        self._phases: dict[Path, np.ndarray] = {}
        self._tools: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}

    @abstractmethod
    def video_path(self, unit: Unit) -> Path: ...

    @abstractmethod
    def phase_path(self, unit: Unit) -> Path: ...

    def phases_of(self, unit: Unit) -> np.ndarray:
        path = self.phase_path(unit)
        if path not in self._phases:
            self._phases[path] = read_phase_file(path, self.meta.classes)
        return self._phases[path]

    def tool_rows(self, unit: Unit) -> tuple[np.ndarray, np.ndarray] | None:
        """((M,) frame indices, (M, K) presence) of the unit's tool file, or None when the
        dataset has no tool annotations for it (default: none)."""
        return None

    def tools_of(self, unit: Unit) -> tuple[np.ndarray, np.ndarray] | None:
        if unit.id not in self._tools:
            self._tools[unit.id] = self.tool_rows(unit)
        return self._tools[unit.id]

    def load(self, unit: Unit, size: int, fps: float = 1.0) -> UnitData:
        phases = self.phases_of(unit)
        frames, ids = self.frame_cache.load(self.video_path(unit), fps, size, self.meta.fps)
        keep = int(np.searchsorted(ids, len(phases)))  # ids ascending: frames with a label row
        if keep == 0:
            raise DataError(f"{self.phase_path(unit)}: no annotation row for any decoded frame "
                            f"of {self.video_path(unit)}")
        if keep < len(ids):
            frames, ids = frames[:keep], ids[:keep]
        tools = None
        rows = self.tools_of(unit)
        if rows is not None:
            tools = align_tool_rows(rows[0], rows[1], ids, self.tool_row_spacing)
        return UnitData(unit=unit, frames=frames, phases=phases[ids], fps=fps, frame_ids=ids,
                        tools=tools)

    def frame_count(self, unit: Unit, fps: float = 1.0) -> int | None:
        """The frames :meth:`load` keeps at ``fps``: the sampling rule applied to the frames the
        container states, up to the last frame with an annotation row; None when the container
        states neither a frame count nor a duration."""
        n_frames, native = video_frame_count(self.video_path(unit), self.meta.fps)
        if n_frames == 0:
            return None
        return kept_count(min(n_frames, len(self.phases_of(unit))), native, fps)

    def prepare_cost(self, unit: Unit, variants: Sequence[tuple[int, float]]) -> int:
        """Frames to decode (the container's count), or 0 when every variant is cached."""
        video = self.video_path(unit)
        if not self.frame_cache.missing(video, variants):
            return 0
        return max(1, video_frame_count(video, self.meta.fps)[0])

    def prepare(self, unit: Unit, variants: Sequence[tuple[int, float]],
                progress: Callable[[int], None] | None = None) -> None:
        """One decode pass of the unit's video fills every missing (size, fps) variant."""
        self.frame_cache.fill(self.video_path(unit), variants, self.meta.fps, progress)

    def extra_checks(self, unit: Unit) -> list[str]:
        """Dataset-specific problems of one unit, one line each (e.g. Cholec80 tool files)."""
        return []

    def check(self) -> list[str]:
        try:
            units = self.units()
        except DataError as exc:
            return [str(exc)]
        problems: list[str] = []
        for unit in units:
            try:
                self.phases_of(unit)
            except DataError as exc:
                problems.append(str(exc))
            problems.extend(self.extra_checks(unit))
            try:
                self.frame_cache.load(self.video_path(unit), 1.0, 32, self.meta.fps)
            except DataError as exc:
                problems.append(str(exc))
        return problems

    def info(self) -> dict[str, Any]:
        out = super().info()
        units = self.units()
        out["annotated_frames"] = {s: int(sum(len(self.phases_of(u)) for u in units
                                              if u.split == s)) for s in SPLITS}
        out["native_fps"] = self.meta.fps
        return out
