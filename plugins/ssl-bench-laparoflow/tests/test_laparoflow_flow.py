"""Laparoflow-SSL flow: Farneback recovers a shift; each pair is computed once and cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssl_bench_laparoflow.flow import FarnebackParams, FlowCache, farneback_flow

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _textured(size: int, seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (size, size), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (5, 5), 1.5)
    return np.repeat(img[:, :, None], 3, axis=2)


def test_farneback_recovers_a_translation() -> None:
    a = _textured(48, 0)
    b = np.roll(a, shift=2, axis=1)  # content moves +2 px in x
    flow = farneback_flow(a, b, FarnebackParams(winsize=9))
    inner = flow[12:-12, 12:-12]
    assert abs(float(np.median(inner[..., 0])) - 2.0) < 0.3
    assert abs(float(np.median(inner[..., 1]))) < 0.3


def test_flow_is_computed_once_per_pair_and_cache_persists(tmp_path: Path, monkeypatch) -> None:
    import ssl_bench_laparoflow.flow as flow_mod

    calls = []
    real = flow_mod.farneback_flow

    def counting(a, b, params):
        calls.append(1)
        return real(a, b, params)

    monkeypatch.setattr(flow_mod, "farneback_flow", counting)
    a, b = _textured(32, 1), _textured(32, 2)
    first = FlowCache(tmp_path / "flow", FarnebackParams(winsize=5))
    f1 = first.flow(a, b)
    f2 = first.flow(a, b)
    assert len(calls) == 1 and first.computed == 1 and first.hits == 1
    assert np.array_equal(f1, f2)
    # a new instance (a later run) reads the same file
    second = FlowCache(tmp_path / "flow", FarnebackParams(winsize=5))
    f3 = second.flow(a, b)
    assert len(calls) == 1 and second.computed == 0 and second.hits == 1
    assert np.array_equal(f1, f3)
    files = list((tmp_path / "flow").rglob("*.npy"))
    assert len(files) == 1 and not list((tmp_path / "flow").rglob(".tmp-*"))
    # other params or another pair are other entries
    FlowCache(tmp_path / "flow", FarnebackParams(winsize=7)).flow(a, b)
    second.flow(b, a)
    assert len(calls) == 3
