"""MSD (any Decathlon task) and AMOS (CT ids only) readers on fixtures written by the test."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ssl_bench.default_plugins.datasets.amos import Amos
from ssl_bench.default_plugins.datasets.msd import Msd
from ssl_bench.errors import DataError

SHAPE = (16, 16, 8)
AFFINE = np.diag([-2.0, -2.0, 3.0, 1.0])
NATIVE = {"spacing": "2,2,3"}


def write_case(image: Path, label: Path, organ: int = 1) -> None:
    hu = np.full(SHAPE, 40, dtype=np.int16)
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask[4:8, 4:8, 2:6] = organ
    for path, data in ((image, hu), (label, mask)):
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, AFFINE), str(path))


def write_spleen_task(parent: Path, labels: dict | None = None) -> Path:
    task = parent / "Task09_Spleen"
    training = []
    for n in (2, 10, 3, 1, 20):  # natural order: 1, 2, 3, 10, 20
        write_case(task / f"imagesTr/spleen_{n}.nii.gz", task / f"labelsTr/spleen_{n}.nii.gz")
        training.append({"image": f"./imagesTr/spleen_{n}.nii.gz",
                         "label": f"./labelsTr/spleen_{n}.nii.gz"})
    # macOS resource forks shipped in the tarballs: on disk and (sometimes) listed
    (task / "imagesTr/._spleen_1.nii.gz").write_bytes(b"\x00\x05\x16\x07junk")
    training.append({"image": "./imagesTr/._spleen_1.nii.gz",
                     "label": "./labelsTr/._spleen_1.nii.gz"})
    (task / "dataset.json").write_text(json.dumps({
        "name": "Spleen", "modality": {"0": "CT"}, "tensorImageSize": "3D",
        "labels": labels or {"0": "background", "1": "spleen"},
        "numTraining": 5, "training": training, "test": ["./imagesTs/spleen_15.nii.gz"]}))
    return task


def test_msd_task_folder_or_parent_with_task_option(tmp_path: Path) -> None:
    task = write_spleen_task(tmp_path)
    for ds in (Msd(task, NATIVE, cache_dir=tmp_path / "c"),
               Msd(tmp_path, {**NATIVE, "task": "Task09_Spleen"}, cache_dir=tmp_path / "c")):
        units = ds.units()
        assert [(u.id, u.split) for u in units] == [
            ("spleen_1", "train"), ("spleen_2", "train"), ("spleen_3", "train"),
            ("spleen_10", "val"), ("spleen_20", "test")]
        assert units[0].source == "msd/Task09_Spleen/spleen_1"
        assert ds.meta.classes == ("background", "spleen")
        assert ds.check() == []
    data = ds.load(units[3], size=8)
    assert data.frames.shape == (8, 8, 8, 3) and data.spacing == pytest.approx((4.0, 4.0, 3.0))
    assert (data.masks[2:6, 2:4, 2:4] == 1).all() and data.masks.sum() == 4 * 2 * 2
    assert Msd.meta.classes == ("background", "foreground")  # class-level meta untouched


def test_msd_nnunet_v2_labels_and_label_value_check(tmp_path: Path) -> None:
    task = write_spleen_task(tmp_path, labels={"background": 0, "spleen": 1})
    ds = Msd(task, NATIVE, cache_dir=tmp_path / "c")
    assert ds.meta.classes == ("background", "spleen")
    write_case(task / "imagesTr/spleen_3.nii.gz", task / "labelsTr/spleen_3.nii.gz", organ=7)
    problems = Msd(task, NATIVE, cache_dir=tmp_path / "c").check()
    assert len(problems) == 1 and "labelsTr/spleen_3.nii.gz" in problems[0]
    assert "label value 7" in problems[0]


def test_msd_escaping_path_and_malformed_manifest(tmp_path: Path) -> None:
    task = write_spleen_task(tmp_path)
    manifest = task / "dataset.json"
    data = json.loads(manifest.read_text())
    data["training"][0]["label"] = "../../etc/passwd"
    manifest.write_text(json.dumps(data))
    with pytest.raises(DataError) as exc:
        Msd(task, NATIVE).units()
    text = str(exc.value)
    assert "\n" not in text and str(manifest) in text and "'../../etc/passwd'" in text
    problems = Msd(task, NATIVE, cache_dir=tmp_path / "c").check()
    # the escaping entry is dropped (one line); the 4 cases left fill no test split (one line)
    assert len(problems) == 2 and "escapes the dataset folder" in problems[0]
    assert "test split is empty" in problems[1]

    manifest.write_text('{"labels": {"0": "background"}, "training": [')
    with pytest.raises(DataError) as exc:
        Msd(task, NATIVE).units()
    assert str(exc.value).startswith(f"{manifest}:1: malformed JSON") and "\n" not in str(exc.value)
    with pytest.raises(DataError, match="folder not found"):
        Msd(tmp_path, {"task": "Task04_Hippocampus"}).units()


def test_amos_reads_ct_cases_only(tmp_path: Path) -> None:
    root = tmp_path / "amos22"
    for n in (1, 2, 3, 4, 5, 6, 540):  # 540 is MRI
        write_case(root / f"imagesTr/amos_{n:04d}.nii.gz",
                   root / f"labelsTr/amos_{n:04d}.nii.gz", 15)
    for n in (8, 600):
        write_case(root / f"imagesVa/amos_{n:04d}.nii.gz", root / f"labelsVa/amos_{n:04d}.nii.gz")
    write_case(root / "imagesTs/amos_0009.nii.gz", tmp_path / "unused.nii.gz")
    ds = Amos(tmp_path, NATIVE, cache_dir=tmp_path / "c")  # parent of amos22/ works too
    units = ds.units()
    assert [(u.id, u.split) for u in units] == [
        ("amos_0001", "train"), ("amos_0002", "train"), ("amos_0003", "train"),
        ("amos_0004", "train"), ("amos_0005", "val"), ("amos_0006", "train"),
        ("amos_0008", "test")]
    assert units[-1].source == "amos/0008" and len(Amos.meta.classes) == 16
    assert ds.check() == []
    assert ds.load(units[0], size=16).masks.max() == 15

    (root / "labelsTr/amos_0002.nii.gz").unlink()
    with pytest.raises(DataError) as exc:
        Amos(root, NATIVE).units()
    assert "labelsTr/amos_0002.nii.gz" in str(exc.value) and "\n" not in str(exc.value)
