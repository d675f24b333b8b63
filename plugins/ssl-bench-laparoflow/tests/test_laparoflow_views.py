"""Laparoflow-SSL views: inverting the tracked crop + flip maps a pixel to its source."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_bench_laparoflow.views import ViewTransform, overlapping_views, sample_points

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _index_image(h: int, w: int) -> torch.Tensor:
    """uint8 (3, H, W) whose channels 0/1 hold the column/row index of each pixel."""
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([cols, rows, torch.zeros_like(rows)]).to(torch.uint8)


def test_known_crop_and_flip_map_view_pixels_back_to_source() -> None:
    source = _index_image(10, 12)
    # 1:1 crop (no resize) so every view pixel is exactly one source pixel
    vt = ViewTransform(top=2, left=3, height=5, width=5, size=5, flip=True)
    view = vt.apply(source)
    for r in range(5):
        for c in range(5):
            centre = torch.tensor([[c + 0.5, r + 0.5]])
            x, y = vt.view_to_source(centre)[0]
            assert (int(x), int(y)) == (3 + 4 - c, 2 + r)  # flipped columns, shifted rows
            assert int(view[0, r, c]) == int(x) and int(view[1, r, c]) == int(y)


def test_source_to_view_inverts_view_to_source_and_grid_sample_reads_the_point() -> None:
    vt = ViewTransform(top=4, left=1, height=20, width=10, size=8, flip=True)
    xy = torch.tensor([[1.5, 4.5], [6.0, 10.0], [10.9, 23.9]])
    uv = vt.source_to_view(xy)
    assert torch.allclose(vt.view_to_source(uv), xy, atol=1e-5)
    # hand-computed: u = 8 - (x - 1) * 8 / 10, v = (y - 4) * 8 / 20
    assert torch.allclose(uv[1], torch.tensor([8 - 5 * 0.8, 6 * 0.4]))
    # a view-space map holding each view pixel's source x reads back the source point's x
    source = torch.arange(30).float().view(1, 1, 1, 30).expand(1, 1, 30, 30) + 0.5
    view = F.interpolate(source[..., 4:24, 1:11], size=(8, 8), mode="bilinear",
                         align_corners=False).flip(-1)
    grid = vt.to_grid(torch.tensor([[4.0, 4.0]])).view(1, 1, 1, 2)
    x_read = F.grid_sample(view, grid, mode="bilinear", align_corners=False).item()
    assert abs(x_read - vt.view_to_source(torch.tensor([[4.0, 4.0]]))[0, 0].item()) < 1e-4


def test_sampled_points_lie_inside_both_views() -> None:
    torch.manual_seed(0)
    for _ in range(20):
        v1, v2, box = overlapping_views(40, 50, 16, (0.2, 1.0))
        xy = sample_points(box, 32)
        for vt in (v1, v2):
            uv = vt.source_to_view(xy)
            assert bool(((uv >= 0) & (uv <= vt.size)).all())
    assert np.isfinite(box).all()
