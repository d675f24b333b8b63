"""BTCV reader: both real layouts written by the test (nibabel), splits, shapes, spacing,
orientation, HU window, the volume cache and bad inputs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ssl_bench.default_plugins.datasets import volume
from ssl_bench.default_plugins.datasets.btcv import Btcv
from ssl_bench.errors import DataError

SHAPE = (16, 16, 8)
LPS = np.diag([-2.0, -2.0, 3.0, 1.0])  # voxel order of many DICOM conversions
RAS = np.diag([2.0, 2.0, 3.0, 1.0])
NATIVE = {"spacing": (2.0, 2.0, 3.0)}  # the files' own spacing: no resampling
IDS = ("0004", "0005", "0006", "0035")


def case_arrays(n: int) -> tuple[np.ndarray, np.ndarray]:
    hu = np.full(SHAPE, -1000, dtype=np.int16)
    hu[2:14, 2:14, :] = 40
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[3:6, 10:13, 2:5] = 6  # liver
    hu[3:6, 10:13, 2:5] = 60
    label[10:12, 4:6, 5:7] = 1 + n % 2  # spleen or right kidney
    hu[10:12, 4:6, 5:7] = 250
    return hu, label


def write_nii(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))


def write_raw(root: Path, affine: np.ndarray = LPS) -> Path:
    for cid in IDS:
        hu, label = case_arrays(int(cid))
        write_nii(root / "RawData/Training/img" / f"img{cid}.nii.gz", hu, affine)
        write_nii(root / "RawData/Training/label" / f"label{cid}.nii.gz", label, affine)
    write_nii(root / "RawData/Testing/img/img0061.nii.gz", case_arrays(61)[0], affine)
    return root


def write_monai(root: Path, affine: np.ndarray = RAS) -> Path:
    entries = []
    for cid in IDS:
        hu, label = case_arrays(int(cid))
        write_nii(root / "imagesTr" / f"img{cid}.nii.gz", hu, affine)
        write_nii(root / "labelsTr" / f"label{cid}.nii.gz", label, affine)
        entries.append({"image": f"imagesTr/img{cid}.nii.gz",
                        "label": f"labelsTr/label{cid}.nii.gz"})
    (root / "dataset_0.json").write_text(json.dumps(
        {"labels": {"0": "background", "1": "spleen"}, "training": entries[:3],
         "validation": entries[3:]}))
    return root


def test_raw_layout_units_and_both_splits(tmp_path: Path) -> None:
    root = write_raw(tmp_path / "btcv")
    units = Btcv(root, NATIVE, cache_dir=tmp_path / "cache").units()
    assert [(u.id, u.split, u.source) for u in units] == [
        ("img0004", "test", "btcv/0004"), ("img0005", "train", "btcv/0005"),
        ("img0006", "val", "btcv/0006"), ("img0035", "test", "btcv/0035")]
    units = Btcv(root, {**NATIVE, "split": "24/6"}, cache_dir=tmp_path / "cache").units()
    assert [u.split for u in units] == ["val", "train", "train", "test"]
    assert len(Btcv.meta.classes) == 14 and Btcv.meta.classes[6] == "liver"


def test_monai_layout_gives_the_same_units(tmp_path: Path) -> None:
    raw = Btcv(write_raw(tmp_path / "raw"), NATIVE, cache_dir=tmp_path / "c").units()
    monai = Btcv(write_monai(tmp_path / "monai"), NATIVE, cache_dir=tmp_path / "c").units()
    assert raw == monai


def test_monai_split_uses_the_manifest_lists_and_has_no_val(tmp_path: Path) -> None:
    monai = {**NATIVE, "split": "monai"}
    # the manifest's training cases are train, its validation cases test, nothing is val
    root = write_monai(tmp_path / "monai")
    units = Btcv(root, monai, cache_dir=tmp_path / "c").units()
    assert [(u.id, u.split) for u in units] == [
        ("img0004", "train"), ("img0005", "train"), ("img0006", "train"), ("img0035", "test")]
    # the raw layout has no manifest: MONAI's published lists (validation 0035-0040)
    raw = Btcv(write_raw(tmp_path / "raw"), monai, cache_dir=tmp_path / "c").units()
    assert raw == units
    # a manifest with other lists is followed, not the published ids
    manifest = json.loads((root / "dataset_0.json").read_text())
    manifest["training"], manifest["validation"] = (manifest["validation"],
                                                    manifest["training"])
    (root / "dataset_0.json").write_text(json.dumps(manifest))
    swapped = Btcv(root, monai, cache_dir=tmp_path / "c").units()
    assert [u.split for u in swapped] == ["test", "test", "test", "train"]
    # the other splits still depend on the case id only
    assert [u.split for u in Btcv(root, NATIVE).units()] == ["test", "train", "val", "test"]


def test_monai_split_needs_both_manifest_lists(tmp_path: Path) -> None:
    root = write_monai(tmp_path / "btcv")
    manifest = json.loads((root / "dataset_0.json").read_text())
    del manifest["validation"]
    (root / "dataset_0.json").write_text(json.dumps(manifest))
    assert len(Btcv(root, NATIVE).units()) == 3  # the default split does not need it
    with pytest.raises(DataError) as exc:
        Btcv(root, {**NATIVE, "split": "monai"}).units()
    assert "'validation'" in _one_line(exc) and str(root / "dataset_0.json") in str(exc.value)


def test_load_lps_volume_slices_in_radiological_order(tmp_path: Path) -> None:
    ds = Btcv(write_raw(tmp_path / "btcv"), NATIVE, cache_dir=tmp_path / "cache")
    data = ds.load(ds.units()[0], size=16)
    hu, label = case_arrays(4)
    assert data.frames.shape == (8, 16, 16, 3) and data.frames.dtype == np.uint8
    assert data.masks.shape == (8, 16, 16) and data.masks.dtype == np.uint8
    assert data.spacing == pytest.approx((2.0, 2.0, 3.0))
    # LPS voxel order: RAS flips x and y, the radiological view flips them back -> transpose
    np.testing.assert_array_equal(data.masks, label.transpose(2, 1, 0))
    assert (data.masks[2:5, 10:13, 3:6] == 6).all()
    # window -175..250 -> 0..255: HU 60 -> 141, HU 40 -> 129, HU 250 -> 255, air -> 0
    assert (data.frames[2:5, 10:13, 3:6] == 141).all()
    assert data.frames[0, 8, 8, 0] == 129 and data.frames[0, 0, 0, 0] == 0
    assert (data.frames[5:7, 4:6, 10:12] == 255).all()
    assert (data.frames[..., 0] == data.frames[..., 2]).all()


def test_load_ras_volume_flips_to_radiological_view(tmp_path: Path) -> None:
    ds = Btcv(write_monai(tmp_path / "btcv"), NATIVE, cache_dir=tmp_path / "cache")
    data = ds.load(ds.units()[0], size=16)
    _, label = case_arrays(4)
    # frame[z, r, c] = ras[15 - c, 15 - r, z]: the liver at x 3..5 (patient left) -> cols 10..12
    np.testing.assert_array_equal(data.masks, label[::-1, ::-1, :].transpose(2, 1, 0))
    assert (data.masks[2:5, 3:6, 10:13] == 6).all()


def test_resize_and_resample(tmp_path: Path) -> None:
    root = write_raw(tmp_path / "btcv")
    small = Btcv(root, NATIVE, cache_dir=tmp_path / "cache").load(Btcv(root, NATIVE).units()[0], 8)
    assert small.frames.shape == (8, 8, 8, 3) and small.spacing == pytest.approx((4.0, 4.0, 3.0))
    assert set(np.unique(small.masks)) <= {0, 1, 2, 6}
    # MONAI Spacing to 1x1x1.5 mm: 16 voxels of 2 mm span 30 mm -> 31 voxels; 8 of 3 mm -> 15
    ds = Btcv(root, {"spacing": "1,1,1.5"}, cache_dir=tmp_path / "cache")
    fine = ds.load(ds.units()[0], size=31)
    assert fine.frames.shape == (15, 31, 31, 3)
    assert fine.spacing == pytest.approx((1.0, 1.0, 1.5))
    # nearest resampling: the 3x3x3-voxel liver becomes 5..7 voxels per axis (ties at
    # half-voxel positions may go either way) around twice its old index
    assert 5 ** 3 <= (fine.masks == 6).sum() <= 7 ** 3
    assert (fine.masks[5:8, 21:24, 7:10] == 6).all()
    z, r, c = np.nonzero(fine.masks == 6)
    assert (z.min(), r.min(), c.min()) >= (3, 19, 5) and (z.max(), r.max(), c.max()) <= (9, 25, 11)


def test_volume_cache_is_hit_on_second_load(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ds = Btcv(write_raw(tmp_path / "btcv"), NATIVE, cache_dir=tmp_path / "cache")
    unit = ds.units()[1]
    first = ds.load(unit, size=16)
    entries = list((tmp_path / "cache" / "volumes" / "btcv").iterdir())
    assert [p.suffix for p in entries] == [".npz"] and entries[0].name.startswith("img0005-")

    def no_monai(*args: object, **kwargs: object) -> None:
        raise AssertionError("MONAI preprocessing ran on a cached volume")

    monkeypatch.setattr(volume, "preprocess", no_monai)
    again = Btcv(ds.root, NATIVE, cache_dir=tmp_path / "cache").load(unit, size=16)
    np.testing.assert_array_equal(first.frames, again.frames)
    np.testing.assert_array_equal(first.masks, again.masks)
    # another window is another cache entry
    other = Btcv(ds.root, {**NATIVE, "hu_window": "-100,200"}, cache_dir=tmp_path / "cache")
    with pytest.raises(AssertionError, match="MONAI preprocessing ran"):
        other.load(unit, size=16)


def _one_line(exc: pytest.ExceptionInfo[DataError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_label_shape_mismatch(tmp_path: Path) -> None:
    root = write_raw(tmp_path / "btcv")
    bad = root / "RawData/Training/label/label0005.nii.gz"
    write_nii(bad, np.zeros((16, 16, 7), np.uint8), LPS)
    ds = Btcv(root, NATIVE, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError) as exc:
        ds.load(ds.units()[1], size=16)
    assert str(bad) in _one_line(exc) and "shape" in str(exc.value)
    problems = ds.check()
    assert len(problems) == 1 and str(bad) in problems[0]


def test_truncated_gzip_and_check_lists_every_problem(tmp_path: Path) -> None:
    root = write_raw(tmp_path / "btcv")
    ds = Btcv(root, NATIVE, cache_dir=tmp_path / "cache")
    assert ds.check() == []
    bad_image = root / "RawData/Training/img/img0006.nii.gz"
    bad_image.write_bytes(bad_image.read_bytes()[:-40])
    bad_label = root / "RawData/Training/label/label0035.nii.gz"
    bad_label.write_bytes(gzip.compress(b"not a nifti"))
    ds = Btcv(root, NATIVE, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError) as exc:
        ds.load(ds.units()[2], size=16)
    assert str(bad_image) in _one_line(exc)
    problems = ds.check()
    assert len(problems) == 2
    assert str(bad_image) in problems[0] and str(bad_label) in problems[1]
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


def test_missing_folders_and_label_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        Btcv(tmp_path / "nowhere", NATIVE).units()
    assert str(tmp_path / "nowhere") in _one_line(exc)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no BTCV layout found"):
        Btcv(tmp_path / "empty", NATIVE).units()
    root = write_raw(tmp_path / "btcv")
    (root / "RawData/Training/label/label0006.nii.gz").unlink()
    with pytest.raises(DataError) as exc:
        Btcv(root, NATIVE).units()
    assert "label0006.nii.gz" in _one_line(exc)


def test_malformed_and_escaping_manifest(tmp_path: Path) -> None:
    root = write_monai(tmp_path / "btcv")
    manifest = root / "dataset_0.json"
    manifest.write_text('{\n  "training": [\n    {"image": "imagesTr/img0004.nii.gz",}\n  ]\n}\n')
    with pytest.raises(DataError) as exc:
        Btcv(root, NATIVE).units()
    assert f"{manifest}:3:" in _one_line(exc) and "malformed JSON" in str(exc.value)
    manifest.write_text(json.dumps({"training": [
        {"image": "../../etc/passwd", "label": "labelsTr/label0004.nii.gz"}]}))
    with pytest.raises(DataError) as exc:
        Btcv(root, NATIVE).units()
    assert "escapes the dataset folder" in _one_line(exc) and str(manifest) in str(exc.value)


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    from ssl_bench.errors import SSLBenchError

    for options in ({"split": "20/10"}, {"spacing": "0,1,1"}, {"hu_window": "250,-175"}):
        with pytest.raises(SSLBenchError) as exc:
            Btcv(tmp_path, options)
        assert "\n" not in str(exc.value)
