"""CholecSeg8k, m2caiSeg, EndoVis 2017 and Kvasir-Instrument readers on tiny fixtures written
here from the spec (DATASETS.md sections 4-6, 8), and their bad-input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssl_bench.default_plugins.datasets.cholecseg8k import CholecSeg8k
from ssl_bench.default_plugins.datasets.endovis2017 import EndoVis2017
from ssl_bench.default_plugins.datasets.kvasir_instrument import KvasirInstrument
from ssl_bench.default_plugins.datasets.m2caiseg import M2CAISeg
from ssl_bench.errors import DataError


def save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def rgb(h: int, w: int, value: int = 100) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


# ---------------------------------------------------------------------------- CholecSeg8k
# watershed grey values from DATASETS.md section 4: 21 liver (2), 31 grasper (5), 50 black
# background (0), 25 cystic duct (8), 255 white border (ignore)
GREY_MASK = np.array([[21, 21, 31, 31],
                      [21, 21, 31, 31],
                      [50, 50, 25, 25],
                      [50, 50, 25, 255]], dtype=np.uint8)
CLASS_MASK_13 = np.array([[2, 2, 5, 5], [2, 2, 5, 5], [0, 0, 8, 8], [0, 0, 8, 255]], np.uint8)
# the 8-class merge: liver 2, instrument 5, background 0, cystic duct -> gallbladder 6
CLASS_MASK_8 = np.array([[2, 2, 5, 5], [2, 2, 5, 5], [0, 0, 6, 6], [0, 0, 6, 255]], np.uint8)
# EndoViT's 8 classes (CholecSeg8k_color_dict_combined_classes.py): liver 2, grasper ->
# instruments 7, background 0, cystic duct -> misc 6
CLASS_MASK_8_ENDOVIT = np.array([[2, 2, 7, 7], [2, 2, 7, 7], [0, 0, 6, 6], [0, 0, 6, 255]],
                                np.uint8)


def write_clip(root: Path, video: int, start: int, n: int, rgba_frame: int | None = None) -> Path:
    clip = root / f"video{video:02d}" / f"video{video:02d}_{start:05d}"
    for k in range(start, start + n):
        save(clip / f"frame_{k}_endo.png", rgb(4, 4, 10 * (k - start)))
        watershed = np.repeat(GREY_MASK[..., None], 3, axis=2)
        if k == rgba_frame:
            watershed = np.concatenate([watershed, np.full((4, 4, 1), 255, np.uint8)], axis=2)
        save(clip / f"frame_{k}_endo_watershed_mask.png", watershed)
        save(clip / f"frame_{k}_endo_color_mask.png", rgb(4, 4))
        save(clip / f"frame_{k}_endo_mask.png", GREY_MASK)
    return clip


@pytest.fixture()
def cholecseg_root(tmp_path: Path) -> Path:
    root = tmp_path / "cholecseg8k"
    write_clip(root, 1, 16585, 3, rgba_frame=16586)  # test
    write_clip(root, 9, 160, 2)  # val
    write_clip(root, 12, 0, 2)  # train
    write_clip(root, 12, 80, 2)  # train
    return root


def test_cholecseg8k_units_masks_and_rgba(cholecseg_root: Path) -> None:
    dataset = CholecSeg8k(cholecseg_root)
    units = dataset.units()
    assert [(u.id, u.split, u.source) for u in units] == [
        ("video01_16585", "test", "cholec80/video01"), ("video09_00160", "val", "cholec80/video09"),
        ("video12_00000", "train", "cholec80/video12"),
        ("video12_00080", "train", "cholec80/video12")]
    data = dataset.load(units[0], size=4)
    assert data.frames.shape == (3, 4, 4, 3) and data.masks.shape == (3, 4, 4)
    assert data.frame_ids.tolist() == [16585, 16586, 16587] and data.fps == 25.0
    for mask in data.masks:  # frame 16586 is RGBA
        np.testing.assert_array_equal(mask, CLASS_MASK_13)
    assert data.frames[2].mean() == 20
    small = dataset.load(units[0], size=2)
    assert small.masks.shape == (3, 2, 2) and set(np.unique(small.masks)) <= {0, 2, 5, 8, 255}
    assert dataset.check() == []
    assert dataset.info()["frames"] == {"train": 4, "val": 2, "test": 3}
    merged = CholecSeg8k(cholecseg_root, {"classes": "8"})
    assert len(merged.meta.classes) == 8 and len(CholecSeg8k.meta.classes) == 13
    np.testing.assert_array_equal(merged.load(units[0], size=4).masks[0], CLASS_MASK_8)


def test_cholecseg8k_endovit_classes_split_and_video_units(cholecseg_root: Path) -> None:
    write_clip(cholecseg_root, 27, 400, 2)  # test under EndoViT's split
    write_clip(cholecseg_root, 17, 0, 1)  # val under EndoViT's split
    dataset = CholecSeg8k(cholecseg_root, {"classes": "8-endovit", "split": "endovit",
                                           "unit": "video"})
    assert dataset.meta.classes == ("Black Background", "Abdominal Wall", "Liver",
                                    "Gastrointestinal Tract", "Fat", "Gallbladder", "Misc",
                                    "Instruments")
    # every grey value of the 13 classes -> EndoViT's class (its watershed_to_class_v3)
    endovit = {50: 0, 11: 1, 21: 2, 13: 3, 12: 4, 22: 5, 23: 6, 24: 6, 25: 6, 33: 6, 5: 6,
               31: 7, 32: 7, 0: 255, 255: 255}
    assert {grey: int(dataset.lut[grey]) for grey in endovit} == endovit
    units = dataset.units()
    assert [(u.id, u.split, u.source) for u in units] == [
        ("video01", "train", "cholec80/video01"), ("video09", "train", "cholec80/video09"),
        ("video12", "test", "cholec80/video12"), ("video17", "val", "cholec80/video17"),
        ("video27", "test", "cholec80/video27")]
    # a video unit holds the frames of all its clips, in frame order
    video12 = dataset.load(units[2], size=4)
    assert video12.frame_ids.tolist() == [0, 1, 80, 81]
    np.testing.assert_array_equal(video12.masks[3], CLASS_MASK_8_ENDOVIT)
    assert dataset.info()["frames"] == {"train": 5, "val": 1, "test": 6}
    assert dataset.check() == []
    # clip units under the same split; the default split is unchanged
    clips = CholecSeg8k(cholecseg_root, {"split": "endovit"}).units()
    assert [u.split for u in clips if u.id.startswith("video12")] == ["test", "test"]
    assert [u.split for u in CholecSeg8k(cholecseg_root).units()][:2] == ["test", "val"]


def test_cholecseg8k_unknown_grey_value(cholecseg_root: Path) -> None:
    path = cholecseg_root / "video09" / "video09_00160" / "frame_161_endo_watershed_mask.png"
    grey = GREY_MASK.copy()
    grey[0, 0] = 35  # a stray value reported in one public repo
    save(path, np.repeat(grey[..., None], 3, axis=2))
    dataset = CholecSeg8k(cholecseg_root)
    problems = dataset.check()
    assert len(problems) == 1 and str(path) in problems[0] and "35" in problems[0]
    assert "\n" not in problems[0]
    mask = dataset.load(dataset.units()[1], size=4).masks[1]
    assert mask[0, 0] == 255 and mask[0, 2] == 5  # unknown -> ignore, the rest as usual


def test_truncated_png_names_the_file(cholecseg_root: Path) -> None:
    path = cholecseg_root / "video12" / "video12_00000" / "frame_1_endo.png"
    big = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    save(path, big)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    dataset = CholecSeg8k(cholecseg_root)
    with pytest.raises(DataError) as exc:
        dataset.load(dataset.units()[2], size=4)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    problems = dataset.check()
    assert len(problems) == 1 and str(path) in problems[0]


def test_cholecseg8k_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no videoNN/videoNN_SSSSS"):
        CholecSeg8k(tmp_path).units()
    with pytest.raises(DataError, match="folder is missing"):
        CholecSeg8k(tmp_path / "nope").units()


# ---------------------------------------------------------------------------- m2caiSeg
def test_m2caiseg_colours_and_val_rule(tmp_path: Path) -> None:
    root = tmp_path / "m2caiSeg dataset"
    gt = np.zeros((2, 2, 3), np.uint8)
    gt[0, 0] = (0, 85, 170)  # grasper 1
    gt[0, 1] = (85, 170, 255)  # gallbladder 11
    gt[1, 0] = (170, 0, 85)  # unknown 18
    gt[1, 1] = (0, 0, 0)  # out-of-frame 0
    for folder, names in {"train": ["a"], "trainval": ["a", "b"], "test": ["c"]}.items():
        for name in names:
            save(root / folder / "images" / f"{name}.jpg", rgb(2, 2))
            save(root / folder / "groundtruth" / f"{name}.png", gt)
    dataset = M2CAISeg(root)
    units = dataset.units()
    assert [(u.id, u.split) for u in units] == [
        ("train/a", "train"), ("trainval/b", "val"), ("test/c", "test")]
    data = dataset.load(units[1], size=2)
    assert data.masks[0].tolist() == [[1, 11], [18, 0]] and data.frames.shape == (1, 2, 2, 3)
    assert dataset.check() == []
    bad = gt.copy()
    bad[1, 1] = (1, 2, 3)
    save(root / "test" / "groundtruth" / "c.png", bad)
    problems = M2CAISeg(root).check()
    assert len(problems) == 1 and "c.png" in problems[0] and "(1, 2, 3)" in problems[0]
    assert M2CAISeg(root).load(units[2], size=2).masks[0, 1, 1] == 255


# ---------------------------------------------------------------------------- EndoVis 2017
def write_sequence(base: Path, k: int) -> None:
    seq = base / f"instrument_dataset_{k}"
    prograsp = np.array([[0, 10], [20, 30]], np.uint8)
    other = np.array([[10, 0], [0, 0]], np.uint8)
    for f in range(2):
        save(seq / "left_frames" / f"frame{f:03d}.png", rgb(2, 2))
        save(seq / "ground_truth" / "Left_Prograsp_Forceps_labels" / f"frame{f:03d}.png", prograsp)
        save(seq / "ground_truth" / "Other_labels" / f"frame{f:03d}.png", other)


def test_endovis2017_tasks_and_folds(tmp_path: Path) -> None:
    base = tmp_path / "endovis" / "train"
    for k in range(1, 9):
        write_sequence(base, k)
    root = tmp_path / "endovis"
    splits = {u.id: u.split for u in EndoVis2017(root, {"fold": 0}).units()}
    assert [k for k, s in splits.items() if s == "test"] == ["instrument_dataset_1",
                                                             "instrument_dataset_3"]
    assert [k for k, s in splits.items() if s == "val"] == ["instrument_dataset_2"]
    assert sum(s == "train" for s in splits.values()) == 5
    fold3 = {u.id: u.split for u in EndoVis2017(root, {"fold": "3"}).units()}
    assert fold3["instrument_dataset_6"] == "test" and fold3["instrument_dataset_1"] == "val"
    expected = {"binary": [[0, 1], [1, 1]], "parts": [[0, 1], [2, 3]], "types": [[7, 2], [2, 2]]}
    for task, mask in expected.items():
        dataset = EndoVis2017(root, {"task": task})
        data = dataset.load(dataset.units()[0], size=2)
        assert data.masks.shape == (2, 2, 2) and data.masks[0].tolist() == mask, task
    assert len(EndoVis2017(root, {"task": "types"}).meta.classes) == 8
    assert EndoVis2017(root).check() == []
    with pytest.raises(Exception, match="fold"):
        EndoVis2017(root, {"fold": 4})


# ---------------------------------------------------------------------------- Kvasir
def test_kvasir_instrument_split_files_and_val_rule(tmp_path: Path) -> None:
    root = tmp_path / "kvasir-instrument"
    ids = [f"ck{i:02d}" for i in range(12)]
    mask = np.array([[0, 255], [255, 0]], np.uint8)
    for i in ids:
        save(root / "images" / f"{i}.jpg", rgb(2, 2))
        save(root / "masks" / f"{i}.png", np.repeat(mask[..., None], 3, axis=2))
    (root / "train.txt").write_text("\n".join(ids[:11]) + "\n")
    (root / "test.txt").write_text(ids[11] + "\n")
    dataset = KvasirInstrument(root)
    units = dataset.units()
    assert [u.id for u in units if u.split == "val"] == ["ck09"]
    assert [u.id for u in units if u.split == "test"] == ["ck11"]
    assert sum(u.split == "train" for u in units) == 10
    assert dataset.load(units[0], size=2).masks[0].tolist() == [[0, 1], [1, 0]]
    assert dataset.check() == []
    (root / "test.txt").write_text("ck11\nck 12\n")
    with pytest.raises(DataError) as exc:
        KvasirInstrument(root).units()
    assert f"{root / 'test.txt'}:2:" in str(exc.value)
