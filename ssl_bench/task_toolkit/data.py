"""Loading units, turning frames into tensors and batching them."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from ssl_bench.api import CellInputs, Unit, UnitData


def load_unit(cell: CellInputs, unit: Unit, fps: float = 1.0) -> UnitData:
    """One unit of the cell's dataset at the cell's image size, frames at ``fps``."""
    return cell.dataset.load(unit, size=cell.image_size, fps=fps)


def to_float_images(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` frames -> float ``(N, 3, H, W)`` in [0, 1] on ``device`` (the
    input an :class:`~ssl_bench.api.Encoder` takes)."""
    array = np.ascontiguousarray(np.asarray(frames))
    if not array.flags.writeable:  # read-only memmaps: torch wants a writable buffer
        array = array.copy()
    return torch.from_numpy(array).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator
                     ) -> Iterator[torch.Tensor]:
    """One pass over ``n`` items in a random order drawn from ``generator``, as index
    batches of ``batch_size``. A trailing batch of one item is merged into the previous batch:
    BatchNorm cannot train on a single item whose last map is 1 x 1."""
    order = torch.randperm(n, generator=generator)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for j, i in enumerate(starts):
        end = starts[j + 1] if j + 1 < len(starts) else n
        yield order[i:end]


def endless_batches(n: int, batch_size: int, generator: torch.Generator
                    ) -> Iterator[torch.Tensor]:
    """:func:`shuffled_batches` pass after pass, a new order per pass: for a fixed number of
    optimiser steps per epoch whatever the number of items."""
    while True:
        yield from shuffled_batches(n, batch_size, generator)


class FrameIndex:
    """The (unit, frame) pairs of a list of loaded units, so that batches of frames and their
    labels are read lazily (frames may be memory-mapped) by index.

    ``keep``: per unit, a boolean mask of the frames to index (default: every frame)."""

    def __init__(self, data: Sequence[UnitData], keep: Sequence[np.ndarray] | None = None) -> None:
        self.data = list(data)
        pairs: list[tuple[int, int]] = []
        for u, d in enumerate(self.data):
            frames = range(len(d.frames)) if keep is None else np.flatnonzero(keep[u])
            pairs.extend((u, int(t)) for t in frames)
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def frames(self, idx: torch.Tensor) -> np.ndarray:
        """uint8 ``(B, H, W, 3)`` frames of the indexed pairs."""
        return np.stack([np.asarray(self.data[self.pairs[i][0]].frames[self.pairs[i][1]])
                         for i in idx.tolist()])

    def masks(self, idx: torch.Tensor) -> np.ndarray:
        """``(B, H, W)`` class masks of the indexed pairs."""
        return np.stack([np.asarray(self.data[self.pairs[i][0]].masks[self.pairs[i][1]])
                         for i in idx.tolist()])

    def phases(self, idx: torch.Tensor) -> np.ndarray:
        """int64 ``(B,)`` phase ids of the indexed pairs."""
        return np.array([int(self.data[self.pairs[i][0]].phases[self.pairs[i][1]])
                         for i in idx.tolist()], dtype=np.int64)

    def tools(self, idx: torch.Tensor) -> np.ndarray:
        """``(B, K)`` tool labels of the indexed pairs."""
        return np.stack([np.asarray(self.data[self.pairs[i][0]].tools[self.pairs[i][1]])
                         for i in idx.tolist()])


__all__ = ["load_unit", "to_float_images", "shuffled_batches", "endless_batches", "FrameIndex"]
