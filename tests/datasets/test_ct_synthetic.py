"""The synthetic BTCV writer: real raw layout, deterministic, anatomy read back by the reader."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from ssl_bench.default_plugins.datasets.btcv import TRAINING_IDS, Btcv
from ssl_bench.default_plugins.synthetic.ct import SIZES, synth_case

NATIVE_SMALL = {"spacing": "9,9,16"}  # the small size's own spacing: the test skips resampling


def test_small_synthetic_suite_passes_check_and_has_plausible_anatomy(tmp_path: Path) -> None:
    root = tmp_path / "btcv"
    Btcv.write_synthetic(root, size="small", seed=0)
    image = nib.load(str(root / "RawData/Training/img/img0001.nii.gz"))
    assert image.get_data_dtype() == np.int16 and image.shape == (40, 40, 12)
    assert image.header.get_zooms() == (9.0, 9.0, 16.0)
    assert len(list((root / "RawData/Testing/img").iterdir())) == 2

    ds = Btcv(root, NATIVE_SMALL, cache_dir=tmp_path / "cache")
    assert ds.check() == []
    units = ds.units()
    assert sorted(u.id for u in units) == [f"img{c}" for c in TRAINING_IDS]

    data = ds.load(units[0], size=40)
    masks = data.masks
    assert set(np.unique(masks)) >= {0, 1, 2, 3, 6, 7, 8, 9}

    def centroid(organ: int) -> tuple[float, float, float]:
        z, r, c = np.nonzero(masks == organ)
        return float(z.mean()), float(r.mean()), float(c.mean())

    liver, spleen, aorta = centroid(6), centroid(1), centroid(8)
    r_kidney, l_kidney, stomach = centroid(2), centroid(3), centroid(7)
    # radiological view: the patient's right is on the image left, anterior at the top
    assert liver[2] < 20 < spleen[2]
    assert r_kidney[2] < aorta[2] < l_kidney[2] or r_kidney[2] < l_kidney[2]
    assert stomach[1] < r_kidney[1] and stomach[1] < aorta[1]
    assert spleen[1] > liver[1]
    # portal venous phase through the -175..250 window: liver ~115 HU -> ~174; the aorta
    # (~190 HU) enhances more than the liver, the gallbladder (~10 HU) not at all
    grey = data.frames[..., 0].astype(float)
    assert abs(grey[masks == 6].mean() - 174) < 15
    assert grey[masks == 8].mean() > grey[masks == 6].mean() + 15
    if (masks == 4).any():
        assert grey[masks == 4].mean() < grey[masks == 6].mean() - 30


def test_synthetic_is_deterministic_and_varies_between_patients() -> None:
    size = SIZES["small"]
    hu_a, label_a, affine = synth_case(np.random.default_rng([0, 1]), size)
    hu_b, label_b, _ = synth_case(np.random.default_rng([0, 1]), size)
    hu_c, label_c, _ = synth_case(np.random.default_rng([0, 2]), size)
    np.testing.assert_array_equal(hu_a, hu_b)
    np.testing.assert_array_equal(label_a, label_b)
    assert (label_a != label_c).mean() > 0.01
    assert np.allclose(np.diag(affine)[:3], (-9.0, -9.0, 16.0))
