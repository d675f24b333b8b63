"""Any Medical Segmentation Decathlon task (``msd``), read through its ``dataset.json``.

Facts (Simpson et al. 2019; MIC-DKFZ/nnUNet
``convert_MSD_dataset.py``; MONAI ``load_decathlon_datalist``):

* Layout ``TaskNN_Name/{imagesTr, labelsTr, imagesTs, dataset.json}``; ``dataset.json`` has
  ``labels`` (``{"0": "background", "1": "spleen"}``; nnU-Net v2 inverts it to name -> id,
  both are accepted), ``modality`` (``{"0": "CT"}``) and ``training``, a list of
  ``{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}``. ``test`` images have
  no labels and are not units.
* The tarballs contain macOS ``._*`` files; like nnU-Net, names starting with "." are skipped
  (in the manifest and on disk).
* 4-D multi-modal images (BrainTumour, Prostate): the first channel (modality "0") is read.
  Non-CT tasks are normalised by the volume's 0.5/99.5 percentiles instead of the HU window.

Root: either the task folder itself (the one holding ``dataset.json``) or its parent with the
option ``task`` naming the folder (``--option task=Task09_Spleen``).

Splits: the Decathlon releases no labelled val/test, so the ``training`` cases are sorted by
case id (natural order: ``spleen_2`` before ``spleen_10``) and assigned by position: position
``i`` with ``i % 5 == 3`` is val, ``i % 5 == 4`` is test, the rest train (60/20/20).

Manifest paths are resolved and must stay inside the task folder; ``../../etc/passwd`` is an
error. Units: ``Unit(id=<file stem>, split, source="msd/<task folder>/<file stem>")``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from ssl_bench.api import Unit
from ssl_bench.default_plugins.datasets.metas import MSD_META
from ssl_bench.default_plugins.datasets.volume import (
    VolumeCase,
    VolumeDataset,
    VolumeOptions,
    is_hidden,
    nifti_stem,
    read_json,
    resolve_inside,
)
from ssl_bench.errors import DataError


class MsdOptions(VolumeOptions):
    #: task folder under root (e.g. "Task09_Spleen"); None: root is the task folder
    task: str | None = None


def natural_key(text: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def msd_split(position: int) -> str:
    return "val" if position % 5 == 3 else "test" if position % 5 == 4 else "train"


def parse_labels(labels: Any, manifest: Path) -> tuple[str, ...]:
    """Class names by id from MSD (id -> name) or nnU-Net v2 (name -> id) ``labels``."""
    if not isinstance(labels, dict) or not labels:
        raise DataError(f"{manifest}: 'labels' must be a non-empty object such as "
                        '{"0": "background", "1": "spleen"}; fix the manifest')
    by_id: dict[int, str] = {}
    for key, value in labels.items():
        if str(key).strip().isdigit():
            by_id[int(key)] = str(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            by_id[value] = str(key)
        else:
            raise DataError(f"{manifest}: label entry {key!r}: {value!r} is neither id -> name nor "
                            "name -> id (region-based labels are not supported); fix 'labels'")
    if sorted(by_id) != list(range(len(by_id))):
        raise DataError(f"{manifest}: label ids {sorted(by_id)} are not 0..{len(by_id) - 1}; "
                        "the label map must be contiguous from 0 (background)")
    return tuple(by_id[i] for i in range(len(by_id)))


class Msd(VolumeDataset):
    """A Medical Segmentation Decathlon task (any ``TaskNN_Name`` folder)."""

    meta = MSD_META
    Options = MsdOptions

    def __init__(self, root: Path | str, options: Mapping[str, Any] | None = None,
                 cache_dir: Path | None = None) -> None:
        super().__init__(root, options, cache_dir)
        task = self.options.task  # type: ignore[attr-defined]
        self.task_root = self.root / task if task else self.root
        self.manifest_path = self.task_root / "dataset.json"
        # The class list depends on the task: an instance-level meta overrides the class one.
        try:
            manifest = read_json(self.manifest_path)
            classes = parse_labels(manifest.get("labels"), self.manifest_path)
        except DataError:
            return  # reported by units() / check()
        modality = manifest.get("modality") or {}
        first = str(modality.get("0", "CT")) if isinstance(modality, dict) else "CT"
        self.intensity = "window" if first.upper() == "CT" else "percentile"
        self.meta = type(self).meta.model_copy(update={
            "classes": classes,
            "name": f"Medical Segmentation Decathlon {manifest.get('name', self.task_root.name)}",
        })

    def scan(self) -> tuple[list[VolumeCase], list[str]]:
        if not self.task_root.is_dir():
            return [], [f"{self.task_root}: folder not found; pass the Decathlon task folder "
                        "(or its parent with --option task=TaskNN_Name)"]
        try:
            manifest = read_json(self.manifest_path)
            parse_labels(manifest.get("labels"), self.manifest_path)
        except DataError as exc:
            return [], [str(exc)]
        training = manifest.get("training")
        if not isinstance(training, list) or not training:
            return [], [f"{self.manifest_path}: 'training' must be a non-empty list of "
                        '{"image": ..., "label": ...}; restore dataset.json from the task archive']
        problems: list[str] = []
        found: list[tuple[str, Path, Path]] = []
        for n, entry in enumerate(training):
            if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
                problems.append(f"{self.manifest_path}: training entry {n} is not an object with "
                                "'image' and 'label'; fix the manifest")
                continue
            try:
                image = resolve_inside(self.task_root, entry["image"], self.manifest_path)
                label = resolve_inside(self.task_root, entry["label"], self.manifest_path)
            except DataError as exc:
                problems.append(str(exc))
                continue
            if is_hidden(image) or is_hidden(label):
                continue  # macOS ._ files
            for path, what in ((image, "image"), (label, "label")):
                if not path.is_file():
                    problems.append(f"{path}: {what} listed in {self.manifest_path.name} (training "
                                    f"entry {n}) not found; restore it from the task archive")
            if image.is_file() and label.is_file():
                found.append((nifti_stem(image), image, label))
        found.sort(key=lambda item: natural_key(item[0]))
        cases: list[VolumeCase] = []
        seen: set[str] = set()
        for cid, image, label in found:
            if cid in seen:
                problems.append(f"{self.manifest_path}: case {cid!r} is listed twice; keep one "
                                "training entry per case")
                continue
            seen.add(cid)
            unit = Unit(id=cid, split=msd_split(len(cases)),
                        source=f"msd/{self.task_root.name}/{cid}")
            cases.append(VolumeCase(unit=unit, image=image, label=label))
        self.layout = "msd"
        return cases, problems
