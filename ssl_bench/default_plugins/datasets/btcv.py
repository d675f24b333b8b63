"""BTCV / Synapse multi-organ abdominal CT (``btcv``).

Facts (checked against the public files named below):

* Raw layout (Synapse syn3193805 ``RawData.zip``; torch-em ``btcv.py``):
  ``RawData/Training/img/img0001.nii.gz`` and ``RawData/Training/label/label0001.nii.gz`` for
  the 30 labelled cases 0001-0010 and 0021-0040; ``RawData/Testing/img`` holds 20 unlabelled
  cases (0061-0080), which have no public labels and are therefore not units.
* MONAI layout (research-contributions ``UNETR/BTCV/dataset/dataset_0.json``): ``imagesTr/``,
  ``labelsTr/`` and ``dataset_0.json`` with MSD-style ``training`` (0001-0010, 0021-0034) and
  ``validation`` (0035-0040) lists of ``{"image": "imagesTr/img0001.nii.gz", "label":
  "labelsTr/label0001.nii.gz"}``.
* Labels: 0 background, 1 spleen, 2 right kidney, 3 left kidney, 4 gallbladder, 5 esophagus,
  6 liver, 7 stomach, 8 aorta, 9 IVC, 10 portal & splenic veins, 11 pancreas, 12 right adrenal,
  13 left adrenal.
* 18/12 split: TransUNet ``lists/lists_Synapse/test_vol.txt`` (test = 0001, 0002, 0003, 0004,
  0008, 0022, 0025, 0029, 0032, 0035, 0036, 0038; train = the other 18).
* 24/6 split: MONAI ``dataset_0.json`` (validation 0035-0040).

Splits of this reader (option ``split``). BTCV's official test cases have no public labels,
so the benchmark's labelled test split comes from the 30 training cases:

* ``"18/12"`` (default): test = the 12 TransUNet test cases; val = 0006, 0023, 0030, 0039
  (4 of the 18 TransUNet training cases, spread over the id range); train = the other 14.
* ``"24/6"``: test = the 6 MONAI validation cases 0035-0040; val = 0004, 0009, 0025, 0031
  (4 of the 24 MONAI training cases); train = the other 20.
* ``"monai"``: MONAI's own lists. With the MONAI layout, the ``training`` cases of
  ``dataset_0.json`` are train and its ``validation`` cases are test; without a manifest (the
  raw layout), the lists of MONAI's published ``dataset_0.json`` are used (training 0001-0010
  and 0021-0034, validation 0035-0040). There is **no val split**: MONAI's tutorials keep the
  checkpoint with the best Dice on those validation cases, which here are the test cases, so
  tasks keep their last epoch instead; in exchange all 24 training volumes can be labelled
  (the 6 / 12 / 24-volume settings of MONAI's self-supervised pretraining tutorial).

The default is 18/12 because the built-in benchmark is a 2-D slice protocol like TransUNet's,
the most reported one on Synapse, and because 12 test volumes give a less noisy estimate than 6.
The fixed splits depend only on the case id, never on the layout, so both layouts give the same
units; ``"monai"`` follows the manifest when there is one (the standard manifest gives the same
units as the raw layout).

Units: one per volume, ``Unit(id="img0001", split, source="btcv/0001")``. Loading follows the
MONAI BTCV recipe (see :mod:`.volume`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from ssl_bench.api import Unit
from ssl_bench.default_plugins.datasets.metas import BTCV_CLASSES, BTCV_META  # noqa: F401  (re-exported: the labels)
from ssl_bench.default_plugins.datasets.volume import (
    VolumeCase,
    VolumeDataset,
    VolumeOptions,
    list_nifti,
    read_json,
    resolve_inside,
)
from ssl_bench.errors import DataError

#: the 30 labelled cases of RawData/Training
TRAINING_IDS = tuple(f"{n:04d}" for n in [*range(1, 11), *range(21, 41)])
TRANSUNET_TEST_IDS = ("0001", "0002", "0003", "0004", "0008", "0022", "0025", "0029", "0032",
                      "0035", "0036", "0038")
MONAI_VALIDATION_IDS = ("0035", "0036", "0037", "0038", "0039", "0040")
#: (test ids, val ids) per split option; every other training id is train
SPLITS_BY_OPTION: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "18/12": (TRANSUNET_TEST_IDS, ("0006", "0023", "0030", "0039")),
    "24/6": (MONAI_VALIDATION_IDS, ("0004", "0009", "0025", "0031")),
}
_CASE_ID = re.compile(r"(\d{4})")


def btcv_split(case_id: str, split: str, manifest_lists: dict[str, str] | None = None) -> str:
    """Split of ``case_id`` under the ``split`` option; ``manifest_lists`` maps case ids to
    ``"training"`` / ``"validation"`` as listed in dataset_0.json (``monai`` split only)."""
    if split == "monai":
        if manifest_lists is not None:
            return "test" if manifest_lists.get(case_id) == "validation" else "train"
        return "test" if case_id in MONAI_VALIDATION_IDS else "train"
    test, val = SPLITS_BY_OPTION[split]
    return "test" if case_id in test else "val" if case_id in val else "train"


def case_id_of(path: Path) -> str | None:
    match = _CASE_ID.search(path.name)
    return match.group(1) if match else None


class BtcvOptions(VolumeOptions):
    split: Literal["18/12", "24/6", "monai"] = "18/12"


class Btcv(VolumeDataset):
    """BTCV multi-organ CT in the raw Synapse or the MONAI ``imagesTr`` layout."""

    meta = BTCV_META
    Options = BtcvOptions

    # -- layout -----------------------------------------------------------------------
    def _pairs(self) -> tuple[list[tuple[str, Path, Path]], list[str]]:
        """(case id, image, label) for every labelled case found, and layout problems; sets
        ``self.manifest_lists`` (case id -> the dataset_0.json list holding it) when the layout
        has a manifest, else None."""
        root = self.root
        self.manifest_lists: dict[str, str] | None = None
        for raw in (root / "RawData" / "Training", root / "Training"):
            if (raw / "img").is_dir():
                self.layout = "raw"
                return self._raw_pairs(raw)
        if (root / "imagesTr").is_dir():
            manifest = root / "dataset_0.json"
            if manifest.is_file():
                self.layout = "monai-json"
                return self._manifest_pairs(manifest)
            self.layout = "monai"
            return self._folder_pairs(root / "imagesTr", root / "labelsTr", "img", "label")
        if not root.is_dir():
            return [], [f"{root}: folder not found; pass the folder that holds RawData/ (or "
                        "imagesTr/ + labelsTr/)"]
        return [], [f"{root}: no BTCV layout found (expected RawData/Training/img + label/, or "
                    "imagesTr/ + labelsTr/ [+ dataset_0.json]); pass the folder that holds them"]

    def _raw_pairs(self, training: Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
        if not (training / "label").is_dir():
            return [], [f"{training / 'label'}: folder not found; extract the BTCV training "
                        "labels (RawData/Training/label/label0001.nii.gz, ...)"]
        return self._folder_pairs(training / "img", training / "label", "img", "label")

    def _folder_pairs(self, images: Path, labels: Path, image_prefix: str, label_prefix: str
                      ) -> tuple[list[tuple[str, Path, Path]], list[str]]:
        if not labels.is_dir():
            return [], [f"{labels}: folder not found; it must hold the label of every image "
                        f"in {images.name}/"]
        pairs, problems = [], []
        for image in list_nifti(images):
            cid = case_id_of(image)
            if cid is None or not image.name.startswith(image_prefix):
                problems.append(f"{image}: unexpected file name; BTCV images are named "
                                f"{image_prefix}0001.nii.gz")
                continue
            suffix = image.name[len(image_prefix) + 4:]
            label = labels / f"{label_prefix}{cid}{suffix}"
            pairs.append((cid, image, label))
        if not pairs and not problems:
            problems.append(f"{images}: no NIfTI images found; extract the BTCV volumes there")
        return pairs, problems

    def _manifest_pairs(self, manifest: Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
        try:
            data = read_json(manifest)
        except DataError as exc:
            return [], [str(exc)]
        pairs, problems = [], []
        training = list(data.get("training") or [])
        validation = list(data.get("validation") or [])
        entries = [(e, "training") for e in training] + [(e, "validation") for e in validation]
        if not entries:
            return [], [f"{manifest}: no 'training' or 'validation' entries; restore "
                        "dataset_0.json from MONAI's BTCV tutorial"]
        split = self.options.split  # type: ignore[attr-defined]
        if split == "monai" and not (training and validation):
            return [], [f"{manifest}: split 'monai' needs both a 'training' and a 'validation' "
                        "list; restore dataset_0.json from MONAI's BTCV tutorial or use split "
                        "'24/6'"]
        self.manifest_lists = {}
        for n, (entry, listed) in enumerate(entries):
            if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
                problems.append(f"{manifest}: entry {n} is not an object with 'image' and "
                                "'label'; fix the manifest")
                continue
            try:
                image = resolve_inside(self.root, entry["image"], manifest)
                label = resolve_inside(self.root, entry["label"], manifest)
            except DataError as exc:
                problems.append(str(exc))
                continue
            cid = case_id_of(image)
            if cid is None:
                problems.append(f"{manifest}: entry {n} image {entry['image']!r} has no 4-digit "
                                "case id; BTCV images are named img0001.nii.gz")
                continue
            self.manifest_lists.setdefault(cid, listed)
            pairs.append((cid, image, label))
        return pairs, problems

    def scan(self) -> tuple[list[VolumeCase], list[str]]:
        pairs, problems = self._pairs()
        split = self.options.split  # type: ignore[attr-defined]
        cases, seen = [], set()
        for cid, image, label in sorted(pairs):
            if cid not in TRAINING_IDS:
                problems.append(f"{image}: case {cid} is not one of the 30 labelled BTCV "
                                "training cases (0001-0010, 0021-0040); remove it or use the "
                                "msd reader for other data")
                continue
            if cid in seen:
                problems.append(f"{image}: case {cid} is listed twice; keep one entry per case")
                continue
            seen.add(cid)
            if not image.is_file():
                problems.append(f"{image}: file not found; restore it from the dataset archive")
                continue
            if not label.is_file():
                problems.append(f"{label}: label file not found for {image.name}; extract the "
                                "BTCV labels next to the images")
                continue
            unit = Unit(id=f"img{cid}", split=btcv_split(cid, split, self.manifest_lists),
                        source=f"btcv/{cid}")
            cases.append(VolumeCase(unit=unit, image=image, label=label))
        return cases, problems

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["split"] = self.options.split  # type: ignore[attr-defined]
        return info

    @classmethod
    def write_synthetic(cls, root: Path, size: str = "default", seed: int = 0) -> None:
        """Write synthetic abdominal CT in the raw BTCV layout (see
        :mod:`ssl_bench.default_plugins.synthetic.ct`)."""
        from ssl_bench.default_plugins.synthetic.ct import write_btcv_synthetic

        write_btcv_synthetic(Path(root), size=size, seed=seed)
