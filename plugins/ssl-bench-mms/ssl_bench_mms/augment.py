"""MMS augmentations: the strong view of unlabelled images (with GridMask) and the weak view.

Sources (facts only; the code here is our own):

* AngeLouCN/Min_Max_Similarity ``data.py``: labelled ("weak") images are only resized; the
  unlabelled ("strong") image gets RandomRotation(90), vertical and horizontal flips (p 0.5),
  RandomAffine(degrees 90, translate (0.5, 0.5), shear 30), ColorJitter(hue 0.5),
  RandomGrayscale(0.2), GaussianBlur(3), then GridMask after normalisation.
* ``gridmask.py`` (after Chen et al., "GridMask Data Augmentation", arXiv 2001.04086): period d
  uniform in [20, 80) px, stripe width ceil(0.4 d), random offsets, rotation uniform in
  [0, 90) degrees, mode 1 (the mask is inverted: the image is kept on the grid lines and
  dropped in the squares), applied with probability 0.8.

Departures: GridMask's period range is scaled by the image's shorter side / 288 (the code's
288-px side), so it means the same at 64 px; dropped pixels are set to 0.5, which is 0 in the
normalised space of ``efficientnet_lite0`` (mean = std = 0.5), as the code's multiplication of the
normalised image by the mask gives 0 there.
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

#: the shorter side of the code's 512x288 training images; GridMask periods are given for it
REFERENCE_SIDE = 288


def strong_transform() -> v2.Compose:
    """uint8 (3, H, W) -> float (3, H, W) in [0, 1]: the code's strong photometric/geometric
    view."""
    return v2.Compose([
        v2.RandomRotation(90),
        v2.RandomVerticalFlip(0.5),
        v2.RandomHorizontalFlip(0.5),
        v2.RandomAffine(degrees=90, translate=(0.5, 0.5), shear=30),
        v2.ColorJitter(hue=0.5),
        v2.RandomGrayscale(0.2),
        v2.GaussianBlur(3),
        v2.ToDtype(torch.float32, scale=True),
    ])


class GridMask:
    """GridMask, mode 1 (keep the grid lines), on float images (3, H, W) in [0, 1]."""

    def __init__(self, d_range: tuple[int, int] = (20, 80), ratio: float = 0.4,
                 rotate: int = 90, prob: float = 0.8, fill: float = 0.5) -> None:
        self.d_range = d_range
        self.ratio = ratio
        self.rotate = rotate
        self.prob = prob
        self.fill = fill

    def mask(self, h: int, w: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(H, W) float mask: 1 where the image is kept."""
        scale = min(h, w) / REFERENCE_SIDE
        d_lo = max(2, round(self.d_range[0] * scale))
        d_hi = max(d_lo + 1, round(self.d_range[1] * scale))
        d = int(torch.randint(d_lo, d_hi, (1,), generator=generator))
        stripe = math.ceil(d * self.ratio)
        side = math.ceil(math.sqrt(h * h + w * w))
        grid = torch.ones(side, side)
        off_h, off_w = (int(v) for v in torch.randint(0, d, (2,), generator=generator))
        for i in range(-1, side // d + 1):
            s = min(max(d * i + off_h, 0), side)
            grid[s:min(max(d * i + off_h + stripe, 0), side), :] = 0
            s = min(max(d * i + off_w, 0), side)
            grid[:, s:min(max(d * i + off_w + stripe, 0), side)] = 0
        angle = float(torch.randint(0, max(self.rotate, 1), (1,), generator=generator))
        grid = TF.rotate(grid[None], angle, interpolation=InterpolationMode.NEAREST)[0]
        top, left = (side - h) // 2, (side - w) // 2
        grid = grid[top:top + h, left:left + w]
        return 1.0 - grid  # mode 1

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        if float(torch.rand(1, generator=generator)) > self.prob:
            return image
        keep = self.mask(image.shape[-2], image.shape[-1], generator)
        return image * keep + self.fill * (1.0 - keep)


class StrongView:
    """The unlabelled view: strong transform, then GridMask."""

    def __init__(self, gridmask_prob: float = 0.8) -> None:
        self.transform = strong_transform()
        self.gridmask = GridMask(prob=gridmask_prob)

    def __call__(self, frame: torch.Tensor) -> torch.Tensor:
        return self.gridmask(self.transform(frame))


__all__ = ["REFERENCE_SIDE", "strong_transform", "GridMask", "StrongView"]
