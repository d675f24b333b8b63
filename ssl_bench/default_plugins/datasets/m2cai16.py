"""M2CAI16-workflow (Twinanda et al., m2cai16 workflow challenge; Stauder et al., TUM LapChole):
41 cholecystectomy videos at 25 fps, 8 phases, official split 27 train / 14 test.

Layout (distribution README, stored in YuemingJin/TMRNet at ab1b51c,
``code/eval/matlab-phase/code/README.txt``; DATASETS.md section 2)::

    <root>/train_dataset/workflow_video_01.mp4 ... _27.mp4, workflow_video_NN.txt
    <root>/test_dataset/test_workflow_video_01.mp4 ... _14.mp4, test_workflow_video_NN.txt

Each ``.txt`` has a header and one row per frame: 0-based frame index, phase name.
Phase ids (0-based): TrocarPlacement, Preparation, CalotTriangleDissection, ClippingCutting,
GallbladderDissection, GallbladderPackaging, CleaningCoagulation, GallbladderRetraction; the
relaxed-boundary groups are (4, 5) and (6, 7) (TMRNet ``Evaluate_m2cai.m``).

Validation rule (no official val split): training videos 24-27 form val, 01-23 train.
"""

from __future__ import annotations

import re
from pathlib import Path

from ssl_bench.api import Unit
from ssl_bench.default_plugins.datasets.metas import M2CAI16_PHASES as PHASES  # noqa: F401  (re-exported: the labels)
from ssl_bench.default_plugins.datasets.metas import M2CAI16_WORKFLOW_META
from ssl_bench.default_plugins.datasets.phase_video import PhaseVideoDataset
from ssl_bench.errors import DataError

TRAIN_NAME = re.compile(r"^workflow_video_(\d{2})\.mp4$")
TEST_NAME = re.compile(r"^test_workflow_video_(\d{2})\.mp4$")
FIRST_VAL_VIDEO = 24


class M2CAI16Workflow(PhaseVideoDataset):
    meta = M2CAI16_WORKFLOW_META

    def units(self) -> list[Unit]:
        units = []
        for folder, pattern, is_test in (("train_dataset", TRAIN_NAME, False),
                                         ("test_dataset", TEST_NAME, True)):
            path = self.root / folder
            if not path.is_dir():
                raise DataError(f"{path}: folder is missing; point the root at the folder that "
                                "holds train_dataset/ and test_dataset/")
            for video in sorted(path.iterdir()):
                match = pattern.match(video.name)
                if not match:
                    continue
                number = int(match.group(1))
                split = "test" if is_test else "val" if number >= FIRST_VAL_VIDEO else "train"
                units.append(Unit(id=video.stem, split=split, source=f"m2cai16/{video.stem}"))
        if not units:
            raise DataError(f"{self.root}: no workflow_video_NN.mp4 files found")
        return units

    def _folder(self, unit: Unit) -> Path:
        return self.root / ("test_dataset" if unit.id.startswith("test_") else "train_dataset")

    def video_path(self, unit: Unit) -> Path:
        return self._folder(unit) / f"{unit.id}.mp4"

    def phase_path(self, unit: Unit) -> Path:
        return self._folder(unit) / f"{unit.id}.txt"
