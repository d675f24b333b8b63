"""CholecSeg8k (Hong et al., arXiv:2012.12453; Kaggle ``newslab/cholecseg8k``): 8080 frames
of 17 Cholec80 videos in 101 clips of 80 consecutive 25-fps frames, 13 classes.

Layout (DATASETS.md section 4; constantinpape/torch-em ``cholecseg8k.py``)::

    <root>/videoNN/videoNN_SSSSS/frame_K_endo.png                  RGB frame
                                 frame_K_endo_watershed_mask.png   class grey value in RGB
                                 frame_K_endo_color_mask.png       colour mask
                                 frame_K_endo_mask.png             annotation-tool mask

``SSSSS`` is the 5-digit first frame of the clip, ``K`` the unpadded Cholec80 frame index.
Labels come from the watershed mask (channel 0; RGBA masks lose their alpha). Grey values
(decimal, not hex) -> class id: 50 background, 11 abdominal wall, 21 liver, 13 GI tract,
12 fat, 31 grasper, 23 connective tissue, 24 blood, 25 cystic duct, 32 L-hook, 22 gallbladder,
33 hepatic vein, 5 liver ligament. 255 (the white 1-px border) and 0 (unannotated pixels,
noted in public CholecSeg8k loaders) read as ignore 255 and are not reported by ``check``;
any other value is reported by ``check`` and read as ignore by ``load``.

Option ``classes`` (the instance's ``meta.classes`` then lists the merged names):

* ``"13"`` (default): the 13 classes above.
* ``"8"`` merges them into 8 anatomical groups: background, abdominal wall, liver (+ hepatic
  vein, liver ligament), GI tract, fat, instrument (grasper + L-hook), gallbladder (+ cystic
  duct), other tissue (connective tissue, blood). This grouping is the harness's own.
* ``"8-endovit"``: EndoViT's 8 classes (``DominikBatic/EndoViT``,
  ``datasets/CholecSeg8k/utils/CholecSeg8k_color_dict_combined_classes.py``,
  ``watershed_to_class_v3``): 0 background, 1 abdominal wall, 2 liver, 3 GI tract, 4 fat,
  5 gallbladder, 6 misc (connective tissue, blood, cystic duct, hepatic vein, liver ligament),
  7 instruments (grasper, L-hook). EndoViT also maps grey 0 and 255 to an ignored class.

Option ``split`` (no official split exists):

* ``"torch-em"`` (default): torch-em's, by video: test = video01, video55; val = video09,
  video52; train = the other 13.
* ``"endovit"``: EndoViT's (``finetuning/semantic_segmentation/output_dir/*/*/*/*.json``,
  "Splits"): test = video12, video27; val = video17, video52; train = the other 13.

Option ``unit``: ``"clip"`` (default) makes each clip a unit (``video01_16585``);
``"video"`` makes each video a unit (``video01``: the frames of all its clips, in frame order),
so label counts count videos, as EndoViT's few-shot settings do (1, 2 or 4 of the 13 training
videos). Either way a unit's source is the Cholec80 video it comes from
(``cholec80/video01``), so the harness keeps val/test videos out of pretraining across both
datasets.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict

from ssl_bench.api import Unit
from ssl_bench.default_plugins.datasets.images import grey_lut, read_grey
from ssl_bench.default_plugins.datasets.metas import CHOLECSEG8K_CLASSES_13 as CLASSES_13  # noqa: F401  (re-exported: the labels)
from ssl_bench.default_plugins.datasets.metas import CHOLECSEG8K_META
from ssl_bench.default_plugins.datasets.segmentation import (
    FrameSegmentationDataset,
    unknown_values_problem,
)
from ssl_bench.errors import DataError

#: watershed grey value -> class id (13 classes)
GREY_TO_CLASS = {50: 0, 11: 1, 21: 2, 13: 3, 12: 4, 31: 5, 23: 6, 24: 7, 25: 8, 32: 9, 22: 10,
                 33: 11, 5: 12}
#: colour-mask RGB of each class id (DATASETS.md section 4)
CLASS_COLOURS = ((127, 127, 127), (210, 140, 140), (255, 114, 114), (231, 70, 156),
                 (186, 183, 75), (170, 255, 0), (255, 85, 0), (255, 0, 0), (255, 255, 0),
                 (169, 255, 184), (255, 160, 165), (0, 50, 128), (111, 74, 0))
IGNORED_GREYS = (0, 255)
CLASSES_8 = ("Background", "Abdominal Wall", "Liver", "Gastrointestinal Tract", "Fat",
             "Instrument", "Gallbladder", "Other Tissue")
#: 13-class id -> 8-class id
MERGE_13_TO_8 = (0, 1, 2, 3, 4, 5, 7, 7, 6, 5, 6, 2, 2)
CLASSES_8_ENDOVIT = ("Black Background", "Abdominal Wall", "Liver", "Gastrointestinal Tract",
                     "Fat", "Gallbladder", "Misc", "Instruments")
#: 13-class id -> EndoViT's 8-class id
MERGE_13_TO_8_ENDOVIT = (0, 1, 2, 3, 4, 7, 6, 6, 6, 7, 5, 6, 6)
#: option value -> (class names, 13-class id -> merged id)
MERGED_CLASSES: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "8": (CLASSES_8, MERGE_13_TO_8),
    "8-endovit": (CLASSES_8_ENDOVIT, MERGE_13_TO_8_ENDOVIT),
}
VIDEOS = (1, 9, 12, 17, 18, 20, 24, 25, 26, 27, 28, 35, 37, 43, 48, 52, 55)
#: split option -> (test videos, val videos); every other video is train
SPLIT_VIDEOS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "torch-em": ((1, 55), (9, 52)),
    "endovit": ((12, 27), (17, 52)),
}
CLIP_NAME = re.compile(r"^video(\d{2})_(\d{5})$")
VIDEO_NAME = re.compile(r"^video(\d{2})$")
FRAME_NAME = re.compile(r"^frame_(\d+)_endo\.png$")


class CholecSeg8kOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    classes: Literal["13", "8", "8-endovit"] = "13"
    split: Literal["torch-em", "endovit"] = "torch-em"
    unit: Literal["clip", "video"] = "clip"


def cholecseg8k_split(video: int, split: str = "torch-em") -> str:
    test, val = SPLIT_VIDEOS[split]
    return "test" if video in test else "val" if video in val else "train"


class CholecSeg8k(FrameSegmentationDataset):
    meta = CHOLECSEG8K_META
    Options = CholecSeg8kOptions
    options: CholecSeg8kOptions
    unit_fps = 25.0

    def __init__(self, root: Path | str, options: Mapping[str, Any] | None = None,
                 cache_dir: Path | None = None) -> None:
        super().__init__(root, options, cache_dir)
        lut = grey_lut(GREY_TO_CLASS)
        if self.options.classes in MERGED_CLASSES:
            names, merge = MERGED_CLASSES[self.options.classes]
            merged = np.asarray(merge + (255,) * (256 - len(merge)), np.uint8)
            lut = merged[lut]
            # instance-level meta: the harness sizes its heads from ``dataset.meta.classes``
            self.meta = type(self).meta.model_copy(update={"classes": names})
        self.lut = lut
        self.known = np.zeros(256, dtype=bool)
        self.known[list(GREY_TO_CLASS)] = True
        self.known[list(IGNORED_GREYS)] = True

    def units(self) -> list[Unit]:
        if not self.root.is_dir():
            raise DataError(f"{self.root}: folder is missing; point the root at the folder that "
                            "holds video01/ ... video55/")
        units = []
        for video_dir in sorted(self.root.glob("video[0-9][0-9]")):
            if not video_dir.is_dir():
                continue
            number = int(video_dir.name[5:])
            for clip in sorted(video_dir.iterdir()):
                match = CLIP_NAME.match(clip.name)
                if not clip.is_dir() or not match:
                    continue
                if int(match.group(1)) != number:
                    raise DataError(f"{clip}: clip of video {match.group(1)} inside "
                                    f"{video_dir.name}/")
                units.append(Unit(id=clip.name,
                                  split=cholecseg8k_split(number, self.options.split),
                                  source=f"cholec80/{video_dir.name}"))
        if self.options.unit == "video":
            # one unit per video that has clips, in the order of the clips
            units = list({u.source: Unit(id=u.source.split("/")[1], split=u.split,
                                         source=u.source) for u in units}.values())
        if not units:
            raise DataError(f"{self.root}: no videoNN/videoNN_SSSSS/ clip folders; point the root "
                            "at the extracted CholecSeg8k folder")
        return units

    def _clip_dir(self, unit: Unit) -> Path:
        return self.root / unit.id[:7] / unit.id

    def _clip_dirs(self, unit: Unit) -> list[Path]:
        """The clip folders of a unit: the clip itself, or every clip of a video unit."""
        if VIDEO_NAME.match(unit.id):
            video = self.root / unit.id
            clips = sorted(p for p in video.glob(f"{unit.id}_*")
                           if p.is_dir() and CLIP_NAME.match(p.name))
            if not clips:
                raise DataError(f"{video}: no {unit.id}_SSSSS/ clip folders")
            return clips
        return [self._clip_dir(unit)]

    def frames_of(self, unit: Unit) -> list[tuple[int, Path]]:
        items = []
        for clip in self._clip_dirs(unit):
            if not clip.is_dir():
                raise DataError(f"{clip}: clip folder is missing")
            found = [(int(m.group(1)), path) for path in clip.iterdir()
                     if (m := FRAME_NAME.match(path.name))]
            if not found:
                raise DataError(f"{clip}: no frame_K_endo.png files")
            items.extend(found)
        return sorted(items)

    def read_mask(self, unit: Unit, frame_id: int, image_path: Path
                  ) -> tuple[np.ndarray, list[str]]:
        path = image_path.with_name(f"frame_{frame_id}_endo_watershed_mask.png")
        grey = read_grey(path)
        present = np.flatnonzero(np.bincount(grey.ravel(), minlength=256))
        unknown = present[~self.known[present]]
        return self.lut[grey], unknown_values_problem(path, unknown, "watershed grey")

    @classmethod
    def write_synthetic(cls, root: Path, size: str = "default", seed: int = 0) -> None:
        from ssl_bench.default_plugins.synthetic.surgical import write_cholecseg8k

        write_cholecseg8k(Path(root), size=size, seed=seed)
