"""``Dataset.frame_count``: the frames ``load`` returns, counted without decoding, which a dry
run turns into a pretraining's planned steps (epochs x pool frames / batch). Checked against
``load`` itself on the small synthetic suite, at two frame rates for the videos."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ssl_bench.api import Dataset, Unit
from ssl_bench.default_plugins.datasets.btcv import Btcv
from ssl_bench.default_plugins.datasets.cholec80 import Cholec80
from ssl_bench.default_plugins.datasets.cholecseg8k import CholecSeg8k
from ssl_bench.default_plugins.datasets.volume import resampled_slices


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("suite")
    Cholec80.write_synthetic(root / "cholec80", size="small", seed=0)
    CholecSeg8k.write_synthetic(root / "cholecseg8k", size="small", seed=0)
    Btcv.write_synthetic(root / "btcv", size="small", seed=0)
    return root


def _train_units(ds: Dataset, n: int) -> list[Unit]:
    return [u for u in ds.units() if u.split == "train"][:n]


@pytest.mark.parametrize("fps", [1.0, 2.5])
def test_a_video_counts_the_frames_load_keeps(suite: Path, tmp_path: Path, fps: float) -> None:
    ds = Cholec80(suite / "cholec80", cache_dir=tmp_path)
    for unit in _train_units(ds, 3):
        assert ds.frame_count(unit, fps) == len(ds.load(unit, size=16, fps=fps).frames)


def test_an_image_clip_counts_its_files(suite: Path, tmp_path: Path) -> None:
    ds = CholecSeg8k(suite / "cholecseg8k", cache_dir=tmp_path)
    for unit in _train_units(ds, 2):
        assert ds.frame_count(unit) == len(ds.load(unit, size=16).frames)


def test_a_video_whose_annotation_stops_early_counts_the_annotated_frames(
        suite: Path, tmp_path: Path) -> None:
    """``load`` drops the frames after the last annotation row; so does the count."""
    root = tmp_path / "cholec80"
    shutil.copytree(suite / "cholec80", root)
    ds = Cholec80(root, cache_dir=tmp_path / "cache")
    unit = _train_units(ds, 1)[0]
    path = ds.phase_path(unit)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:1 + 57]))  # the header and 57 rows
    ds = Cholec80(root, cache_dir=tmp_path / "cache")
    for fps in (1.0, 2.5):
        n = ds.frame_count(unit, fps)
        assert n == len(ds.load(unit, size=16, fps=fps).frames)
        assert n is not None and n < len(lines) - 1


def test_a_volume_counts_about_its_resampled_slices_from_the_header(
        suite: Path, tmp_path: Path) -> None:
    """The header gives the slices spanning the volume at the new spacing, which MONAI's
    resampling makes too (up to one on a half slice), at several spacings."""
    for spacing in (7.0, 10.0, 16.0, 20.0):
        ds = Btcv(suite / "btcv", {"spacing": f"9,9,{spacing:g}"},
                  cache_dir=tmp_path / f"cache{spacing:g}")
        unit = _train_units(ds, 1)[0]
        counted = ds.frame_count(unit)
        assert counted == resampled_slices(ds.case(unit).image, spacing) \
            == round(11 * 16 / spacing) + 1
        assert abs(counted - len(ds.load(unit, size=16).frames)) <= 1

