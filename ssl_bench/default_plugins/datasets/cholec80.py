"""Cholec80 (Twinanda et al., EndoNet, IEEE TMI 2017): 80 cholecystectomy videos, 7 phases.

Layout of the distributed archive (DATASETS.md section 1; DKFZ ``mml`` cholec80 creator,
YuemingJin/TMRNet ``code/eval/python/get_paths_labels.py``)::

    <root>/videos/video01.mp4 ... video80.mp4
    <root>/phase_annotations/video01-phase.txt   "Frame\\tPhase" + one row per 25-fps frame
    <root>/tool_annotations/video01-tool.txt     "Frame\\tGrasper\\t...\\tSpecimenBag", 1 fps

Phase ids are 0-based in the order of TeCNO ``datasets/cholec80.py`` / TMRNet / SelfSupSurg
(the relaxed metric hard-codes 3/4 and 5/6); tool ids follow the tool-file columns.

Splits by video number (option ``split``):

* ``"40/8/32"`` (default; TeCNO, SelfSupSurg, Trans-SVNet): 1-40 train, 41-48 val, 49-80 test.
* ``"40/40"`` (EndoNet, TMRNet): 41-80 test. The original protocol has no validation set;
  this reader takes videos 33-40 out of the train half as val (so model selection never sees
  test), leaving 1-32 for training.

Units are the videos present under ``videos/`` (a partial copy gives fewer units). Frames
are sampled at ``fps`` (default 1: frame ids 0, 25, 50, ...) and squashed to a square.

Tool labels (``UnitData.tools``, the 7 columns of ``meta.tools``) are filled when the video's
tool file exists, aligned with the returned frames as :mod:`.phase_video` describes (at 1 fps
every frame is an annotated one). Without a tool file ``tools`` is None: tool annotations are
optional for phase recognition.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ssl_bench.api import Unit
from ssl_bench.default_plugins.datasets.metas import CHOLEC80_META
from ssl_bench.default_plugins.datasets.metas import CHOLEC80_PHASES as PHASES  # noqa: F401  (re-exported: the labels)
from ssl_bench.default_plugins.datasets.metas import CHOLEC80_TOOLS as TOOLS
from ssl_bench.default_plugins.datasets.phase_video import PhaseVideoDataset, read_tool_file
from ssl_bench.errors import DataError

VIDEO_NAME = re.compile(r"^video(\d{2})\.mp4$")


class Cholec80Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: Literal["40/8/32", "40/40"] = "40/8/32"


def cholec80_split(number: int, scheme: str) -> str:
    """Split of video ``number`` (1-80) under ``scheme`` ("40/8/32" or "40/40")."""
    if scheme == "40/40":
        return "train" if number <= 32 else "val" if number <= 40 else "test"
    return "train" if number <= 40 else "val" if number <= 48 else "test"


class Cholec80(PhaseVideoDataset):
    meta = CHOLEC80_META
    Options = Cholec80Options
    options: Cholec80Options

    def units(self) -> list[Unit]:
        videos = self.root / "videos"
        for folder in (videos, self.root / "phase_annotations"):
            if not folder.is_dir():
                raise DataError(f"{folder}: folder is missing; point the root at the extracted "
                                "cholec80 folder (videos/, phase_annotations/, tool_annotations/)")
        units = []
        for path in sorted(videos.iterdir()):
            match = VIDEO_NAME.match(path.name)
            if not match:
                continue
            number = int(match.group(1))
            if not 1 <= number <= 80:
                raise DataError(f"{path}: Cholec80 videos are numbered 01-80")
            name = f"video{number:02d}"
            units.append(Unit(id=name, split=cholec80_split(number, self.options.split),
                              source=f"cholec80/{name}"))
        if not units:
            raise DataError(f"{videos}: no videoNN.mp4 files; point the root at the extracted "
                            "cholec80 folder")
        return units

    def video_path(self, unit: Unit) -> Path:
        return self.root / "videos" / f"{unit.id}.mp4"

    def phase_path(self, unit: Unit) -> Path:
        return self.root / "phase_annotations" / f"{unit.id}-phase.txt"

    def tool_path(self, unit: Unit) -> Path:
        return self.root / "tool_annotations" / f"{unit.id}-tool.txt"

    def tools(self, unit: Unit) -> tuple[Any, Any]:
        """((M,) 25-fps frame indices, (M, 7) tool presence) from the 1-fps tool file."""
        return read_tool_file(self.tool_path(unit), TOOLS)

    def tool_rows(self, unit: Unit) -> tuple[Any, Any] | None:
        return self.tools(unit) if self.tool_path(unit).is_file() else None

    def extra_checks(self, unit: Unit) -> list[str]:
        if not (self.root / "tool_annotations").is_dir():
            return []  # tool labels are optional for phase recognition
        try:
            self.tools(unit)
        except DataError as exc:
            return [str(exc)]
        return []

    @classmethod
    def write_synthetic(cls, root: Path, size: str = "default", seed: int = 0) -> None:
        from ssl_bench.default_plugins.synthetic.surgical import write_cholec80

        write_cholec80(Path(root), size=size, seed=seed)
