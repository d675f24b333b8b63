"""Kvasir-Instrument (Jha et al., MMM 2021): 590 GI-endoscopy frames with binary instrument
masks, split 472 train / 118 test by ``train.txt`` / ``test.txt``.

Layout (DATASETS.md section 8; dataset-ninja/kvasir-instrument ``src/convert.py``)::

    <root>/images/<id>.jpg   <root>/masks/<id>.png   <root>/train.txt   <root>/test.txt

The split files list ids without extension, one a line. Masks are 0/255; channel 0 is read
and ``== 255`` is the instrument (dataset-ninja), everything else background.

Validation rule (no official val split): of the train ids in sorted order, every 10th one
(positions 9, 19, 29, ...) is val, so about 10% of train. Units are single images (the source
video of each frame is not distributed), source ``kvasir-instrument/<id>``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssl_bench.api import Unit
from ssl_bench.default_plugins.datasets.images import read_grey
from ssl_bench.default_plugins.datasets.metas import KVASIR_INSTRUMENT_META
from ssl_bench.default_plugins.datasets.segmentation import FrameSegmentationDataset
from ssl_bench.errors import DataError

VAL_EVERY = 10


def read_id_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: split file is missing; restore it from kvasir-instrument.zip")
    ids = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        if any(c.isspace() for c in text) or "/" in text:
            raise DataError(f"{path}:{lineno}: malformed id line {line!r}; expected one image id "
                            "without extension")
        ids.append(text)
    return ids


class KvasirInstrument(FrameSegmentationDataset):
    meta = KVASIR_INSTRUMENT_META

    def units(self) -> list[Unit]:
        for folder in (self.root / "images", self.root / "masks"):
            if not folder.is_dir():
                raise DataError(f"{folder}: folder is missing; point the root at the extracted "
                                "kvasir-instrument folder")
        train = sorted(read_id_list(self.root / "train.txt"))
        test = sorted(read_id_list(self.root / "test.txt"))
        units = [Unit(id=i, split="val" if k % VAL_EVERY == VAL_EVERY - 1 else "train",
                      source=f"kvasir-instrument/{i}") for k, i in enumerate(train)]
        units += [Unit(id=i, split="test", source=f"kvasir-instrument/{i}") for i in test]
        if not units:
            raise DataError(f"{self.root}: train.txt and test.txt list no ids")
        return units

    def frames_of(self, unit: Unit) -> list[tuple[int, Path]]:
        return [(0, self.root / "images" / f"{unit.id}.jpg")]

    def read_mask(self, unit: Unit, frame_id: int, image_path: Path
                  ) -> tuple[np.ndarray, list[str]]:
        grey = read_grey(self.root / "masks" / f"{unit.id}.png")
        return (grey == 255).astype(np.uint8), []
