"""Shared view augmentations and pretraining datasets over a :class:`PretrainPool`.

Augmentations run on uint8 CHW tensors with torchvision's v2 transforms (no PIL round trip)
and return float images in [0, 1]; encoders normalise. The recipe is the SimCLR/MoCo v2
"aug-plus" family: RandomResizedCrop, horizontal flip, colour jitter (p 0.8), grayscale
(p 0.2), Gaussian blur (p 0.5) — Chen et al. 2020 (arXiv 2002.05709, 2003.04297).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torchvision.transforms import v2

from ssl_bench.api import PretrainPool

Transform = Callable[[torch.Tensor], torch.Tensor]


def ssl_augment(size: int, scale: tuple[float, float] = (0.2, 1.0), jitter: float = 0.4,
                hue: float = 0.1, grayscale_p: float = 0.2, blur_p: float = 0.5,
                flip_p: float = 0.5) -> Transform:
    """uint8 (3, H, W) -> float (3, size, size) in [0, 1], one random view."""
    kernel = max(3, (size // 10) | 1)
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=scale, antialias=True),
        v2.RandomHorizontalFlip(flip_p),
        v2.RandomApply([v2.ColorJitter(jitter, jitter, jitter, hue)], p=0.8),
        v2.RandomGrayscale(grayscale_p),
        v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur_p),
        v2.ToDtype(torch.float32, scale=True),
    ])


def resize_only(size: int) -> Transform:
    return v2.Compose([v2.Resize((size, size), antialias=True),
                       v2.ToDtype(torch.float32, scale=True)])


def frame_tensor(frame: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 (possibly a read-only memmap) -> (3, H, W) uint8 tensor."""
    return torch.from_numpy(np.array(frame)).permute(2, 0, 1)  # copy: memmaps are read-only


class FrameViews(torch.utils.data.Dataset):
    """Every frame of the pool, returned as ``len(transforms)`` augmented views (a tuple)."""

    def __init__(self, pool: PretrainPool, transforms: list[Transform]) -> None:
        self.pool = pool
        self.index = pool.frame_index()
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        s, t = self.index[i]
        frame = frame_tensor(self.pool.sequences[s].frames[t])
        return tuple(transform(frame) for transform in self.transforms)


class Clips(torch.utils.data.Dataset):
    """Windows of ``length`` consecutive frames (stride ``step``) that never cross a sequence
    (and so never a unit or split) boundary. Items: uint8 (length, 3, H, W)."""

    def __init__(self, pool: PretrainPool, length: int, step: int = 1) -> None:
        self.pool = pool
        self.length = length
        self.step = step
        span = (length - 1) * step + 1
        self.index = [(s, t) for s, seq in enumerate(pool.sequences)
                      for t in range(0, len(seq.frames) - span + 1)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        s, t = self.index[i]
        frames = self.pool.sequences[s].frames[t: t + (self.length - 1) * self.step + 1: self.step]
        return torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2)
