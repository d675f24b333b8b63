"""EndoVis 2017 Robotic Instrument Segmentation (Allan et al., arXiv:1902.06426): 8 training
sequences of 225 frames (2 Hz, 1920x1080, da Vinci Xi, porcine).

Layout (DATASETS.md section 6; ternaus/robot-surgery-segmentation ``prepare_data.py``)::

    <root>/[train/]instrument_dataset_k/left_frames/frame000.png ... frame224.png
    <root>/[train/]instrument_dataset_k/ground_truth/<Name>_labels/frame000.png ...

One greyscale mask per instrument folder; pixel values 10 shaft, 20 wrist, 30 claspers.
Frames and masks of 1920x1080 are cropped to the 1280x1024 active area at x=320, y=28
(ternaus); other sizes are used whole. Option ``task``:

* ``binary``: 0 background, 1 instrument: the union of every folder except ``Other``;
* ``parts``: 0 background, 1 shaft, 2 wrist, 3 claspers (``Other`` excluded);
* ``types``: from the folder name: 1 Bipolar Forceps, 2 Prograsp Forceps, 3 Large Needle
  Driver, 4 Vessel Sealer, 5 Grasping Retractor, 6 Monopolar Curved Scissors, 7 Other.

Where instruments overlap, the folder later in sorted order wins. Mask values other than
0/10/20/30 read as ignore 255 (``check`` reports them).

Splits (option ``fold`` 0-3): the customary 4-fold cross-validation by sequence
{0: [1, 3], 1: [2, 5], 2: [4, 8], 3: [6, 7]}; the held-out fold is test. Validation rule:
the first sequence of the next fold ((fold + 1) % 4) is val; the other 5 sequences train.
A unit is one sequence (``instrument_dataset_1``). The released test sequences
(``instrument_2017_test``) are not read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ssl_bench.api import Unit
from ssl_bench.default_plugins.datasets.images import grey_lut, read_grey, read_rgb
from ssl_bench.default_plugins.datasets.metas import ENDOVIS2017_CLASSES as CLASSES
from ssl_bench.default_plugins.datasets.metas import ENDOVIS2017_META
from ssl_bench.default_plugins.datasets.segmentation import (
    FrameSegmentationDataset,
    unknown_values_problem,
)
from ssl_bench.errors import DataError

FOLDS = {0: (1, 3), 1: (2, 5), 2: (4, 8), 3: (6, 7)}
TYPES = ("Bipolar_Forceps", "Prograsp_Forceps", "Large_Needle_Driver", "Vessel_Sealer",
         "Grasping_Retractor", "Monopolar_Curved_Scissors", "Other")
PART_VALUES = {0: 0, 10: 1, 20: 2, 30: 3}
CROP_FROM = (1080, 1920)
CROP_Y, CROP_X, CROP_H, CROP_W = 28, 320, 1024, 1280
SEQUENCE = re.compile(r"^instrument_dataset_(\d+)$")
FRAME = re.compile(r"^frame(\d+)\.png$")


class EndoVis2017Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Literal["binary", "parts", "types"] = "binary"
    fold: int = Field(default=0, ge=0, le=3)


def endovis2017_split(sequence: int, fold: int) -> str:
    if sequence in FOLDS[fold]:
        return "test"
    return "val" if sequence == FOLDS[(fold + 1) % 4][0] else "train"


def instrument_type(folder: Path) -> int:
    """1-based type id from a ``<Name>_labels`` folder name; raises for an unknown name."""
    for i, name in enumerate(TYPES, start=1):
        if name.lower() in folder.name.lower():
            return i
    raise DataError(f"{folder}: instrument folder name matches none of {', '.join(TYPES)}")


def crop_active(array: np.ndarray) -> np.ndarray:
    if array.shape[:2] == CROP_FROM:
        return array[CROP_Y:CROP_Y + CROP_H, CROP_X:CROP_X + CROP_W]
    return array


class EndoVis2017(FrameSegmentationDataset):
    meta = ENDOVIS2017_META
    Options = EndoVis2017Options
    options: EndoVis2017Options
    unit_fps = 2.0

    def __init__(self, root: Path | str, options: Mapping[str, Any] | None = None,
                 cache_dir: Path | None = None) -> None:
        super().__init__(root, options, cache_dir)
        self.meta = type(self).meta.model_copy(update={"classes": CLASSES[self.options.task]})
        self.part_lut = grey_lut(PART_VALUES)

    def _base(self) -> Path:
        return self.root / "train" if (self.root / "train").is_dir() else self.root

    def units(self) -> list[Unit]:
        base = self._base()
        if not base.is_dir():
            raise DataError(f"{base}: folder is missing; point the root at the folder holding "
                            "instrument_dataset_1 ... instrument_dataset_8")
        units = []
        for folder in sorted(base.iterdir(), key=lambda p: p.name):
            match = SEQUENCE.match(folder.name)
            if not folder.is_dir() or not match:
                continue
            number = int(match.group(1))
            if not 1 <= number <= 8:
                continue  # test-set sequences 9-10 have no released training masks here
            units.append(Unit(id=folder.name, split=endovis2017_split(number, self.options.fold),
                              source=f"endovis2017/{folder.name}"))
        if not units:
            raise DataError(f"{base}: no instrument_dataset_k folders")
        return sorted(units, key=lambda u: int(u.id.rsplit("_", 1)[1]))

    def frames_of(self, unit: Unit) -> list[tuple[int, Path]]:
        folder = self._base() / unit.id / "left_frames"
        if not folder.is_dir():
            raise DataError(f"{folder}: folder is missing")
        items = [(int(m.group(1)), p) for p in folder.iterdir() if (m := FRAME.match(p.name))]
        if not items:
            raise DataError(f"{folder}: no frameNNN.png files")
        return sorted(items)

    def read_image(self, unit: Unit, frame_id: int, image_path: Path) -> np.ndarray:
        return crop_active(read_rgb(image_path))

    def read_mask(self, unit: Unit, frame_id: int, image_path: Path
                  ) -> tuple[np.ndarray, list[str]]:
        gt = self._base() / unit.id / "ground_truth"
        if not gt.is_dir():
            raise DataError(f"{gt}: folder is missing")
        folders = sorted(p for p in gt.iterdir() if p.is_dir())
        task = self.options.task
        mask: np.ndarray | None = None
        problems: list[str] = []
        for folder in folders:
            kind = instrument_type(folder)
            path = folder / image_path.name
            grey = crop_active(read_grey(path))
            if mask is None:
                mask = np.zeros(grey.shape, dtype=np.uint8)
            present = np.flatnonzero(np.bincount(grey.ravel(), minlength=256))
            unknown = present[self.part_lut[present] == 255]
            problems.extend(unknown_values_problem(path, unknown, "part"))
            is_other = kind == len(TYPES)
            if task != "types" and is_other:
                continue
            parts = self.part_lut[grey]
            hit = parts != 0
            if task == "binary":
                mask[hit] = np.where(parts[hit] == 255, 255, 1)
            elif task == "parts":
                mask[hit] = parts[hit]
            else:
                mask[hit] = np.where(parts[hit] == 255, 255, kind)
        if mask is None:
            image = crop_active(read_rgb(image_path))
            mask = np.zeros(image.shape[:2], dtype=np.uint8)  # no instrument folder: all background
        return mask, problems
