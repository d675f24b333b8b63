"""Shared parts of the surgical segmentation readers (image clips with one mask per frame).

``load`` reads every frame of a unit with its mask, squashes frames to a square with area
interpolation and masks with nearest neighbour (:mod:`.images`); mask values outside the
dataset's label map become ``ignore_index`` (255). ``check`` reads every file and reports each
file that does not decode, has a mask value outside the label map, or a mask whose shape
differs from its frame, one line each.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ssl_bench.api import SPLITS, Dataset, Unit, UnitData
from ssl_bench.default_plugins.datasets.images import read_rgb, squash_mask, squash_rgb
from ssl_bench.errors import DataError


class FrameSegmentationDataset(Dataset):
    """A dataset whose units are lists of (frame id, image file) with a mask per frame."""

    #: frame rate of the frames within a unit (None for unrelated images)
    unit_fps: float | None = None

    @abstractmethod
    def frames_of(self, unit: Unit) -> list[tuple[int, Path]]:
        """(frame id, image path) of every frame of ``unit``, in temporal order."""

    @abstractmethod
    def read_mask(self, unit: Unit, frame_id: int, image_path: Path
                  ) -> tuple[np.ndarray, list[str]]:
        """((H, W) uint8 class ids, unknown values -> 255; problems found, one line each)."""

    def read_image(self, unit: Unit, frame_id: int, image_path: Path) -> np.ndarray:
        return read_rgb(image_path)

    def load(self, unit: Unit, size: int, fps: float = 1.0) -> UnitData:
        items = self.frames_of(unit)
        if not items:
            raise DataError(f"{self.root}: unit {unit.id} has no frames")
        frames = np.empty((len(items), size, size, 3), dtype=np.uint8)
        masks = np.empty((len(items), size, size), dtype=np.uint8)
        for i, (frame_id, path) in enumerate(items):
            frames[i] = squash_rgb(self.read_image(unit, frame_id, path), size)
            masks[i] = squash_mask(self.read_mask(unit, frame_id, path)[0], size)
        ids = np.asarray([frame_id for frame_id, _ in items], dtype=np.int64)
        return UnitData(unit=unit, frames=frames, masks=masks, fps=self.unit_fps, frame_ids=ids)

    def frame_count(self, unit: Unit, fps: float = 1.0) -> int:
        """Every frame of the unit (``load`` ignores ``fps``): its file list, no image read."""
        return len(self.frames_of(unit))

    def check(self) -> list[str]:
        try:
            units = self.units()
        except DataError as exc:
            return [str(exc)]
        problems: list[str] = []
        for unit in units:
            try:
                items = self.frames_of(unit)
            except DataError as exc:
                problems.append(str(exc))
                continue
            for frame_id, path in items:
                try:
                    image = self.read_image(unit, frame_id, path)
                except DataError as exc:
                    problems.append(str(exc))
                    image = None
                try:
                    mask, found = self.read_mask(unit, frame_id, path)
                except DataError as exc:
                    problems.append(str(exc))
                    continue
                problems.extend(found)
                if image is not None and image.shape[:2] != mask.shape[:2]:
                    problems.append(f"{path}: frame is {image.shape[1]}x{image.shape[0]} but its "
                                    f"mask is {mask.shape[1]}x{mask.shape[0]}")
        return problems

    def info(self) -> dict[str, Any]:
        out = super().info()
        units = self.units()
        out["frames"] = {s: sum(len(self.frames_of(u)) for u in units if u.split == s)
                         for s in SPLITS}
        return out


def unknown_values_problem(path: Path, values: np.ndarray, what: str) -> list[str]:
    """One problem line listing mask values outside the label map (empty when none)."""
    if len(values) == 0:
        return []
    listed = ", ".join(str(int(v)) for v in values[:10])
    return [f"{path}: {what} value(s) {listed} not in the label map (read as ignore 255)"]
