"""``Dataset.frame_count``: the frames ``load`` returns, counted without decoding, which a dry
run turns into a pretraining's planned steps (epochs x pool frames / batch). Checked against
``load`` itself on the small synthetic suite, at two frame rates for the videos."""

from __future__ import annotations

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


def test_a_volume_counts_its_slices_from_the_cache_or_about_from_the_header(
        suite: Path, tmp_path: Path) -> None:
    """Before the volume is prepared the header gives about the resampled slice count; once
    the volume cache holds it, the count is exact."""
    ds = Btcv(suite / "btcv", {"spacing": "9,9,7"}, cache_dir=tmp_path)
    unit = _train_units(ds, 1)[0]
    before = ds.frame_count(unit)
    assert before == resampled_slices(ds.case(unit).image, 7.0) == round(12 * 16 / 7)
    loaded = len(ds.load(unit, size=16).frames)
    assert abs(before - loaded) <= 1
    assert ds.frame_count(unit) == loaded

