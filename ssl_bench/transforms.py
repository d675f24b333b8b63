"""Shared view augmentations and pretraining datasets over a :class:`PretrainPool`.

Augmentations run on uint8 CHW tensors with torchvision's v2 transforms (no PIL round trip)
and return float images in [0, 1]; encoders normalise. The recipe is the SimCLR/MoCo v2
"aug-plus" family: RandomResizedCrop, horizontal flip, colour jitter (p 0.8), grayscale
(p 0.2), Gaussian blur (p 0.5) — Chen et al. 2020 (arXiv 2002.05709, 2003.04297) — minus
what a pool's data does not allow (:class:`ssl_bench.api.AugmentPolicy`: no colour jitter on
calibrated CT intensities, no horizontal flips on lateralized anatomy).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torchvision.transforms import v2

from ssl_bench.api import AugmentPolicy, PretrainPool

Transform = Callable[[torch.Tensor], torch.Tensor]


def ssl_augment(size: int, scale: tuple[float, float] = (0.2, 1.0), jitter: float = 0.4,
                hue: float = 0.1, grayscale_p: float = 0.2, blur_p: float = 0.5,
                flip_p: float = 0.5, policy: AugmentPolicy | None = None) -> Transform:
    """uint8 (3, H, W) -> float (3, size, size) in [0, 1], one random view.

    ``policy`` (the pool's :class:`~ssl_bench.api.AugmentPolicy`) drops what the data does
    not allow: for CT (calibrated, lateralized) the view is crop + blur only, as CT SSL work
    keeps intensities and laterality (e.g. Models Genesis, Zhou et al., MedIA 2021, keeps HU
    values and uses no mirroring across the body's midline; Swin UNETR pretraining, Tang et
    al., CVPR 2022, uses crops, rotations and cutout, no colour jitter)."""
    policy = policy or AugmentPolicy()
    kernel = max(3, (size // 10) | 1)
    steps: list[Transform] = [v2.RandomResizedCrop(size, scale=scale, antialias=True)]
    if policy.horizontal_flip:
        steps.append(v2.RandomHorizontalFlip(flip_p))
    if policy.colour_jitter:
        steps += [v2.RandomApply([v2.ColorJitter(jitter, jitter, jitter, hue)], p=0.8),
                  v2.RandomGrayscale(grayscale_p)]
    steps += [v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur_p),
              v2.ToDtype(torch.float32, scale=True)]
    return v2.Compose(steps)


def solarize(policy: AugmentPolicy | None = None, p: float = 0.2) -> list[Transform]:
    """BYOL's solarisation (threshold 0.5, p 0.2) as a list of steps, empty when the pool's
    intensities are calibrated (solarising inverts HU values)."""
    if policy is not None and not policy.colour_jitter:
        return []
    return [v2.RandomSolarize(threshold=0.5, p=p)]


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
