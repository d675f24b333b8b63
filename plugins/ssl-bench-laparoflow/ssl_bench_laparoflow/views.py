"""Two geometrically tracked views of a frame, the flow at common source points, and the
frame-pair pretraining dataset of Laparoflow-SSL.

A view is a crop box of the source frame (``top``, ``left``, ``height``, ``width`` in source
pixels) resized to ``size`` x ``size`` and optionally flipped left-right. Coordinates are
continuous with pixel ``i`` covering ``[i, i + 1)`` (its centre at ``i + 0.5``), the convention
of ``torch.nn.functional.grid_sample(align_corners=False)``, so the mapping source <-> view is an
exact affine map and inverting it aligns the two views' pixels (SimCLR's RandomResizedCrop +
flip recipe, Chen et al. 2020, arXiv 2002.05709; the alignment by inverting the crops is the
one of pixel-level contrast, e.g. PixPro, Xie et al. CVPR 2021, arXiv 2011.10043).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import RandomResizedCrop, v2
from torchvision.transforms.v2 import functional as TF

from ssl_bench.api import AugmentPolicy, PretrainPool
from ssl_bench.transforms import frame_tensor
from ssl_bench_laparoflow.flow import FlowCache


@dataclass(frozen=True)
class ViewTransform:
    """Crop box in source pixels, output size and left-right flip of one view."""

    top: int
    left: int
    height: int
    width: int
    size: int
    flip: bool

    def apply(self, frame: torch.Tensor) -> torch.Tensor:
        """uint8 (3, H, W) source -> uint8 (3, size, size) view (geometry only)."""
        out = TF.resized_crop(frame, self.top, self.left, self.height, self.width,
                              [self.size, self.size], antialias=True)
        return TF.horizontal_flip(out) if self.flip else out

    def source_to_view(self, xy: torch.Tensor) -> torch.Tensor:
        """(N, 2) continuous source (x, y) -> (N, 2) continuous view (u, v)."""
        u = (xy[:, 0] - self.left) * self.size / self.width
        v = (xy[:, 1] - self.top) * self.size / self.height
        if self.flip:
            u = self.size - u
        return torch.stack([u, v], dim=1)

    def view_to_source(self, uv: torch.Tensor) -> torch.Tensor:
        """(N, 2) continuous view (u, v) -> (N, 2) continuous source (x, y)."""
        u = self.size - uv[:, 0] if self.flip else uv[:, 0]
        x = self.left + u * self.width / self.size
        y = self.top + uv[:, 1] * self.height / self.size
        return torch.stack([x, y], dim=1)

    def to_grid(self, uv: torch.Tensor) -> torch.Tensor:
        """View coordinates -> ``grid_sample`` coordinates in [-1, 1] (align_corners=False)."""
        return uv * (2.0 / self.size) - 1.0


def random_view(height: int, width: int, size: int, scale: tuple[float, float],
                flip_p: float = 0.5) -> ViewTransform:
    """A RandomResizedCrop box (torchvision's sampling, ratio 3/4..4/3) and a random flip."""
    dummy = torch.empty(1, height, width)
    top, left, h, w = RandomResizedCrop.get_params(dummy, list(scale), [3 / 4, 4 / 3])
    return ViewTransform(int(top), int(left), int(h), int(w), size,
                         bool(torch.rand(()) < flip_p))


def overlap_box(a: ViewTransform, b: ViewTransform) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) of the two crop boxes' intersection in source pixels, or None."""
    x0, y0 = max(a.left, b.left), max(a.top, b.top)
    x1 = min(a.left + a.width, b.left + b.width)
    y1 = min(a.top + a.height, b.top + b.height)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return float(x0), float(y0), float(x1), float(y1)


def overlapping_views(height: int, width: int, size: int, scale: tuple[float, float],
                      tries: int = 10, flip_p: float = 0.5
                      ) -> tuple[ViewTransform, ViewTransform, tuple[float, float, float, float]]:
    """Two random views whose crops overlap (after ``tries`` misses the second view reuses the
    first view's box with its own flip)."""
    first = random_view(height, width, size, scale, flip_p)
    for _ in range(tries):
        second = random_view(height, width, size, scale, flip_p)
        box = overlap_box(first, second)
        if box is not None:
            return first, second, box
    second = ViewTransform(first.top, first.left, first.height, first.width, size,
                           bool(torch.rand(()) < flip_p))
    box = overlap_box(first, second)
    assert box is not None
    return first, second, box


def sample_points(box: tuple[float, float, float, float], n: int) -> torch.Tensor:
    """``n`` uniform continuous source points (x, y) inside ``box``."""
    x0, y0, x1, y1 = box
    r = torch.rand(n, 2)
    return torch.stack([x0 + r[:, 0] * (x1 - x0), y0 + r[:, 1] * (y1 - y0)], dim=1)


def flow_at(flow: np.ndarray, xy: torch.Tensor) -> torch.Tensor:
    """(H, W, 2) flow read at the pixels containing the continuous points ``xy`` -> (N, 2)."""
    h, w = flow.shape[:2]
    cols = xy[:, 0].floor().long().clamp(0, w - 1).numpy()
    rows = xy[:, 1].floor().long().clamp(0, h - 1).numpy()
    return torch.from_numpy(np.ascontiguousarray(flow[rows, cols], dtype=np.float32))


def photometric_augment(size: int, jitter: float = 0.4, hue: float = 0.1,
                        grayscale_p: float = 0.2, blur_p: float = 0.5,
                        policy: AugmentPolicy | None = None) -> v2.Compose:
    """The photometric half of the SimCLR/MoCo v2 recipe (no pixel moves): uint8 -> float;
    without colour jitter and grayscale when the pool's ``policy`` forbids them (calibrated
    CT intensities)."""
    kernel = max(3, (size // 10) | 1)
    colour = [v2.RandomApply([v2.ColorJitter(jitter, jitter, jitter, hue)], p=0.8),
              v2.RandomGrayscale(grayscale_p)]
    return v2.Compose([
        *(colour if policy is None or policy.colour_jitter else []),
        v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur_p),
        v2.ToDtype(torch.float32, scale=True),
    ])


class FlowPairViews(torch.utils.data.Dataset):
    """Items of Laparoflow-SSL pretraining: for frame ``t`` of a sequence and its neighbour
    ``t + gap`` (same sequence, so never across a unit), two tracked views of frame ``t``,
    ``points`` common source points as ``grid_sample`` coordinates in each view, and the flow
    ``t -> t + gap`` at those points in units of the frame side.

    Sequences shorter than ``gap + 1`` frames (single images) pair a frame with itself: zero
    flow, so every pair weighs the same and the loss is plain pixel InfoNCE.
    """

    def __init__(self, pool: PretrainPool, size: int, flow_cache: FlowCache, gap: int = 1,
                 points: int = 64, scale: tuple[float, float] = (0.2, 1.0)) -> None:
        self.pool = pool
        self.size = size
        self.flow_cache = flow_cache
        self.points = points
        self.scale = scale
        self.photometric = photometric_augment(size, policy=pool.augment_policy)
        self.index: list[tuple[int, int, int]] = []
        for s, seq in enumerate(pool.sequences):
            n = len(seq.frames)
            if n > gap:
                self.index.extend((s, t, t + gap) for t in range(n - gap))
            else:
                self.index.extend((s, t, t) for t in range(n))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, t, t_next = self.index[i]
        frames = self.pool.sequences[s].frames
        frame = np.asarray(frames[t])
        h, w = frame.shape[:2]
        if t_next == t:
            flow = np.zeros((h, w, 2), np.float32)
        else:
            flow = self.flow_cache.flow(frame, np.asarray(frames[t_next]))
        view1, view2, box = overlapping_views(
            h, w, self.size, self.scale,
            flip_p=0.5 if self.pool.augment_policy.horizontal_flip else 0.0)
        xy = sample_points(box, self.points)
        source = frame_tensor(frame)
        return {
            "view1": self.photometric(view1.apply(source)),
            "view2": self.photometric(view2.apply(source)),
            "grid1": view1.to_grid(view1.source_to_view(xy)),
            "grid2": view2.to_grid(view2.source_to_view(xy)),
            "flow": flow_at(flow, xy) / float(max(h, w)),
        }
