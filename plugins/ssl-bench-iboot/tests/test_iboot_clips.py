"""iBoot clip sampling: inside one sequence, train units only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssl_bench.api import PretrainPool, Unit, UnitData
from ssl_bench.errors import DataError, SSLBenchError
from ssl_bench_iboot.data import ClipPairs


def _unit_data(uid: str, split: str, n: int, code: int) -> UnitData:
    """Frames whose pixels encode (sequence code, frame index)."""
    frames = np.zeros((n, 8, 8, 3), np.uint8)
    frames[..., 0] = code
    frames[..., 1] = np.arange(n, dtype=np.uint8)[:, None, None]
    return UnitData(Unit(uid, split, f"test/{uid}"), frames)


def _identity(clip: torch.Tensor) -> torch.Tensor:
    return clip


def test_pairs_stay_inside_one_train_sequence() -> None:
    seqs = [_unit_data("a", "train", 7, 10), _unit_data("b", "train", 3, 20),
            _unit_data("c", "train", 12, 30), _unit_data("d", "train", 2, 40)]
    pool = PretrainPool("surgical", seqs, "test")
    data = ClipPairs(pool, length=3, transform=_identity, step=2, max_gap=4)
    span = 5
    # windows only from sequences long enough (b and d are too short for a span of 5)
    assert len(data) == (7 - span + 1) + (12 - span + 1)
    torch.manual_seed(0)
    for _ in range(20):
        for i in range(len(data)):
            item = data[i]
            seq = pool.sequences[item["sequence"]]
            assert seq.unit.split == "train"
            for view, start in zip(item["clips"], item["starts"].tolist()):
                assert 0 <= start and start + span <= len(seq.frames)
                codes = view[:, 0].flatten().unique().tolist()
                assert codes == [int(seq.frames[0, 0, 0, 0])]  # one sequence only
                assert view[:, 1, 0, 0].tolist() == list(range(start, start + span, 2))
            a, b = item["starts"].tolist()
            assert abs(a - b) <= 4


def test_val_or_test_units_are_refused() -> None:
    for split in ("val", "test"):
        pool = PretrainPool("surgical", [_unit_data("a", "train", 9, 1),
                                         _unit_data("v", split, 9, 2)], "test")
        with pytest.raises(DataError, match=f"{split} unit 'v'"):
            ClipPairs(pool, length=3, transform=_identity)


def test_pool_without_long_enough_sequence() -> None:
    pool = PretrainPool("surgical", [_unit_data("a", "train", 2, 1)], "test")
    with pytest.raises(SSLBenchError, match="lower clip_length"):
        ClipPairs(pool, length=3, transform=_identity)
