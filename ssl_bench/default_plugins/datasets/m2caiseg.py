"""m2caiSeg (Maqbool et al., arXiv:2008.10134; Kaggle ``salmanmaq/m2caiseg``): 307
laparoscopic images from M2CAI16 videos with colour-coded masks of 19 classes.

Layout (DATASETS.md section 5; constantinpape/torch-em ``m2caiseg.py``)::

    <root>/{train,test,trainval}/images/*.jpg
    <root>/{train,test,trainval}/groundtruth/*.png

``<root>`` is the ``m2caiSeg dataset`` folder. ``trainval`` contains ``train``, so val =
trainval minus train (torch-em). An image pairs with the ground truth of the same file stem;
when the stems differ, images and masks pair in natural sort order (torch-em), which needs
equal counts. Pairs whose image and mask sizes differ are skipped (torch-em skips them too).

Colour -> class id: 0 out-of-frame (0,0,0), 1 grasper (0,85,170), 2 bipolar (0,85,255),
3 hook (0,170,255), 4 scissors (0,255,85), 5 clipper (0,255,170), 6 irrigator (85,0,170),
7 specimen bag (85,0,255), 8 trocars (170,85,85), 9 clip (170,170,170), 10 liver (85,170,0),
11 gallbladder (85,170,255), 12 fat (85,255,0), 13 upper wall (85,255,170), 14 artery
(170,0,255), 15 intestine (255,0,255), 16 bile (255,255,0), 17 blood (255,0,0), 18 unknown
(170,0,85). Other colours read as ignore 255 (``check`` reports them).

Units: one per image (the source video of each image is not distributed), id
``<split folder>/<stem>``, source ``m2caiseg/<stem>``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image

from ssl_bench.api import Unit
from ssl_bench.default_plugins.datasets.images import colour_to_class, read_channels
from ssl_bench.default_plugins.datasets.metas import M2CAISEG_CLASS_COLOURS as CLASS_COLOURS
from ssl_bench.default_plugins.datasets.metas import M2CAISEG_META
from ssl_bench.default_plugins.datasets.segmentation import FrameSegmentationDataset
from ssl_bench.errors import DataError

COLOUR_TO_CLASS = {colour: i for i, colour in enumerate(CLASS_COLOURS.values())}


def natural_key(text: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _pairs(folder: Path) -> list[tuple[Path, Path]]:
    images_dir, gt_dir = folder / "images", folder / "groundtruth"
    for sub in (images_dir, gt_dir):
        if not sub.is_dir():
            raise DataError(f"{sub}: folder is missing; point the root at the 'm2caiSeg dataset' "
                            "folder (train/, test/, trainval/ with images/ and groundtruth/)")
    images = sorted(images_dir.glob("*.jpg"), key=lambda p: natural_key(p.name))
    masks = sorted(gt_dir.glob("*.png"), key=lambda p: natural_key(p.name))
    by_stem = {m.stem: m for m in masks}
    if all(i.stem in by_stem for i in images):
        return [(i, by_stem[i.stem]) for i in images]
    if len(images) != len(masks):
        raise DataError(f"{folder}: {len(images)} images but {len(masks)} ground-truth masks and "
                        "their names do not match; restore the folder from the archive")
    return list(zip(images, masks))


def _same_size(image: Path, mask: Path) -> bool:
    try:
        with Image.open(image) as a, Image.open(mask) as b:
            return a.size == b.size
    except OSError:
        return True  # let check()/load() report the file that does not decode


class M2CAISeg(FrameSegmentationDataset):
    meta = M2CAISEG_META

    def __init__(self, root: Path | str, options: Mapping[str, Any] | None = None,
                 cache_dir: Path | None = None) -> None:
        super().__init__(root, options, cache_dir)
        self._files: dict[str, tuple[Path, Path]] = {}

    def units(self) -> list[Unit]:
        if not self.root.is_dir():
            raise DataError(f"{self.root}: folder is missing; point the root at the "
                            "'m2caiSeg dataset' folder")
        train = _pairs(self.root / "train")
        trainval = _pairs(self.root / "trainval")
        test = _pairs(self.root / "test")
        train_names = {image.name for image, _ in train}
        val = [(i, m) for i, m in trainval if i.name not in train_names]
        units = []
        self._files = {}
        for split, folder, pairs in (("train", "train", train), ("val", "trainval", val),
                                     ("test", "test", test)):
            for image, mask in pairs:
                if not _same_size(image, mask):
                    continue
                unit_id = f"{folder}/{image.stem}"
                self._files[unit_id] = (image, mask)
                units.append(Unit(id=unit_id, split=split, source=f"m2caiseg/{image.stem}"))
        if not units:
            raise DataError(f"{self.root}: no image/ground-truth pairs found")
        return units

    def _pair(self, unit: Unit) -> tuple[Path, Path]:
        if not self._files:
            self.units()
        if unit.id not in self._files:
            raise DataError(f"{self.root}: unknown unit {unit.id!r}")
        return self._files[unit.id]

    def frames_of(self, unit: Unit) -> list[tuple[int, Path]]:
        return [(0, self._pair(unit)[0])]

    def read_mask(self, unit: Unit, frame_id: int, image_path: Path
                  ) -> tuple[np.ndarray, list[str]]:
        path = self._pair(unit)[1]
        mask, unknown = colour_to_class(read_channels(path), COLOUR_TO_CLASS)
        problems = []
        if unknown:
            listed = ", ".join(str(c) for c in sorted(unknown)[:5])
            problems.append(f"{path}: colour(s) {listed} not in the m2caiSeg label map "
                            "(read as ignore 255)")
        return mask, problems
