"""The Encoder contract, checked on a probe batch before any downstream training.

An :class:`ssl_bench.api.Encoder` maps float images in [0, 1] of shape (B, 3, H, W) to a list
of feature maps, finest first: map ``i`` has ``channels[i]`` channels and spatial size
``H / strides[i]`` (rounded either way, as convolutions with padding do). Its outputs must be
finite and must differ between different images. A violation fails the cell with one line
naming the method and what differs, instead of an unrelated error deep inside a task.
"""

from __future__ import annotations

import math

import torch

from ssl_bench.api import Encoder
from ssl_bench.errors import CellFailure

PROBE_BATCH = 4


class EncoderContractError(CellFailure):
    """An encoder's outputs do not match what it declares."""


def probe_images(size: int, batch: int = PROBE_BATCH, seed: int = 0) -> torch.Tensor:
    """A fixed batch of distinct images: smooth gradients of different directions and colours
    plus seeded noise (so any non-degenerate encoder tells them apart)."""
    generator = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    images = []
    for i in range(batch):
        angle = math.pi * i / batch
        ramp = (math.cos(angle) * xs + math.sin(angle) * ys + 1) / 2
        colour = torch.rand(3, 1, 1, generator=generator)
        noise = torch.rand(3, size, size, generator=generator)
        images.append((0.6 * ramp * colour + 0.4 * noise).clamp(0, 1))
    return torch.stack(images)


def check_encoder(method_id: str, encoder: Encoder, image_size: int,
                  device: torch.device) -> None:
    """Raise :class:`EncoderContractError` (one line) when ``encoder`` breaks the contract."""
    where = f"encoder of method {method_id!r}"
    channels, strides = list(encoder.channels), list(encoder.strides)
    if len(channels) != len(strides) or not channels:
        raise EncoderContractError(f"{where} declares {len(channels)} channel counts and "
                                   f"{len(strides)} strides; declare one of each per map")
    x = probe_images(image_size).to(device)
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            maps = encoder(x)
    finally:
        encoder.train(was_training)
    if not isinstance(maps, (list, tuple)) or not all(isinstance(m, torch.Tensor) for m in maps):
        raise EncoderContractError(f"{where} returned {type(maps).__name__}; forward must return "
                                   "a list of (B, C, H, W) tensors, finest first")
    if len(maps) != len(channels):
        raise EncoderContractError(f"{where} returned {len(maps)} maps but declares "
                                   f"{len(channels)} (channels={channels})")
    for i, (m, c, s) in enumerate(zip(maps, channels, strides)):
        if m.dim() != 4 or m.shape[0] != len(x):
            raise EncoderContractError(f"{where}: map {i} has shape {tuple(m.shape)}; expected "
                                       f"({len(x)}, {c}, H/{s}, W/{s})")
        if m.shape[1] != c:
            raise EncoderContractError(f"{where}: map {i} has {m.shape[1]} channels, declared "
                                       f"{c}")
        expected = image_size / s
        if not all(math.floor(expected) <= d <= math.ceil(expected) for d in m.shape[2:]):
            raise EncoderContractError(f"{where}: map {i} is {m.shape[2]}x{m.shape[3]} for "
                                       f"{image_size}px input, but stride {s} gives "
                                       f"{expected:g}; fix `strides`")
        if not torch.isfinite(m).all():
            raise EncoderContractError(f"{where}: map {i} holds NaN or infinite values on the "
                                       "probe batch")
    coarsest = maps[-1].float().mean(dim=(2, 3))
    spread = (coarsest - coarsest.mean(dim=0, keepdim=True)).abs().max()
    scale = coarsest.abs().max().clamp_min(1e-12)
    if float(spread) <= 1e-6 * float(scale) or float(spread) == 0.0:
        raise EncoderContractError(f"{where} gives the same output for every probe image "
                                   "(constant features); its encoder ignores its input")


__all__ = ["EncoderContractError", "check_encoder", "probe_images"]
