"""AMOS22 multi-organ CT (``amos``), CT cases only.

Facts (zenodo 7155725; MIC-DKFZ/nnUNet
``Dataset218_Amos2022_task1.py``; torch-em ``amos.py``):

* Layout ``amos22/{imagesTr, labelsTr, imagesVa, labelsVa, imagesTs, dataset.json}``, files
  ``amos_XXXX.nii.gz`` with the same name for image and label.
* Case ids <= 500 are CT, > 500 MRI (nnU-Net's rule); only CT cases are read.
* Labels: 0 background, 1 spleen, 2 right kidney, 3 left kidney, 4 gallbladder, 5 esophagus,
  6 liver, 7 stomach, 8 aorta, 9 postcava (IVC), 10 pancreas, 11 right adrenal gland,
  12 left adrenal gland, 13 duodenum, 14 bladder, 15 prostate/uterus.

Root: the ``amos22`` folder or its parent.

Splits: AMOS22's test labels are not public but its validation labels are, so
test = the CT cases of ``imagesVa`` / ``labelsVa``; the CT cases of ``imagesTr`` sorted by id
are train, except every fifth (position ``i % 5 == 4``), which is val (80/20).
Units: ``Unit(id="amos_0001", split, source="amos/0001")``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ssl_bench.api import Unit
from ssl_bench.default_plugins.datasets.metas import AMOS_CLASSES, AMOS_META  # noqa: F401  (re-exported: the labels)
from ssl_bench.default_plugins.datasets.volume import (
    VolumeCase,
    VolumeDataset,
    list_nifti,
    nifti_stem,
)

MAX_CT_ID = 500
_AMOS_NAME = re.compile(r"^amos_(\d+)$")


class Amos(VolumeDataset):
    """AMOS22 abdominal CT (ids <= 500)."""

    meta = AMOS_META

    def _base(self) -> Path:
        nested = self.root / "amos22"
        return nested if (nested / "imagesTr").is_dir() else self.root

    def scan(self) -> tuple[list[VolumeCase], list[str]]:
        base = self._base()
        if not (base / "imagesTr").is_dir():
            return [], [f"{base / 'imagesTr'}: folder not found; pass the amos22 folder (with "
                        "imagesTr/, labelsTr/, imagesVa/, labelsVa/)"]
        problems: list[str] = []
        cases: list[VolumeCase] = []
        for images, labels, is_test in (("imagesTr", "labelsTr", False),
                                        ("imagesVa", "labelsVa", True)):
            if not (base / images).is_dir():
                if is_test:
                    continue  # reported by check() as an empty test split
                problems.append(f"{base / images}: folder not found")
                continue
            if not (base / labels).is_dir():
                problems.append(f"{base / labels}: folder not found; extract the AMOS22 labels "
                                f"for {images}/")
                continue
            position = 0
            for image in list_nifti(base / images):
                match = _AMOS_NAME.match(nifti_stem(image))
                if match is None:
                    problems.append(f"{image}: unexpected file name; AMOS images are named "
                                    "amos_0001.nii.gz")
                    continue
                number = int(match.group(1))
                if number > MAX_CT_ID:
                    continue  # MRI
                label = base / labels / image.name
                if not label.is_file():
                    problems.append(f"{label}: label file not found for {image.name}; extract "
                                    f"the AMOS22 {labels}/ folder")
                    continue
                split = "test" if is_test else ("val" if position % 5 == 4 else "train")
                position += 0 if is_test else 1
                cid = f"{number:04d}"
                cases.append(VolumeCase(
                    unit=Unit(id=f"amos_{cid}", split=split, source=f"amos/{cid}"),
                    image=image, label=label))
        self.layout = "amos22"
        return cases, problems
