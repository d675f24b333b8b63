"""Pairs of short clips from the same unit of the pretraining pool (iBoot's two "views").

Windows come from :class:`ssl_bench.transforms.Clips`, so a clip never crosses a sequence (and
so never a unit or split) boundary. The pool must hold only train units (the harness builds it
so); a val/test unit here is refused rather than trained on.
"""

from __future__ import annotations

import torch

from ssl_bench.api import PretrainPool
from ssl_bench.errors import DataError, SSLBenchError
from ssl_bench.transforms import Clips, Transform


class ClipPairs(torch.utils.data.Dataset):
    """Item ``i``: window ``i`` of :class:`Clips` and a second window of the same sequence whose
    start lies at most ``max_gap`` frames away, each augmented independently (one set of
    augmentation parameters per clip, shared by its frames).

    Returns ``{"clips": float (2, length, 3, size, size) in [0, 1], "sequence": int,
    "starts": long (2,)}``; ``sequence`` and ``starts`` index ``pool.sequences`` and its frames.
    """

    def __init__(self, pool: PretrainPool, length: int, transform: Transform, step: int = 1,
                 max_gap: int = 8) -> None:
        for seq in pool.sequences:
            if seq.unit.split != "train":
                raise DataError(f"pretraining pool {pool.domain!r} holds {seq.unit.split} unit "
                                f"{seq.unit.id!r} ({seq.unit.source}); build pools from train "
                                f"units only")
        self.pool = pool
        self.length = length
        self.step = step
        self.max_gap = max_gap
        self.transform = transform
        self.clips = Clips(pool, length, step)
        if len(self.clips) == 0:
            longest = max((len(s.frames) for s in pool.sequences), default=0)
            raise SSLBenchError(f"no sequence of the {pool.domain!r} pool has a clip of {length} "
                                f"frames at step {step} (longest: {longest} frames); lower "
                                f"clip_length or clip_step")
        span = (length - 1) * step + 1
        #: number of valid window starts per sequence
        self.starts_per_sequence = [max(0, len(s.frames) - span + 1) for s in pool.sequences]

    def __len__(self) -> int:
        return len(self.clips)

    def sample(self, i: int) -> tuple[int, int, int]:
        """(sequence, start of clip a, start of clip b) for item ``i`` (torch's RNG)."""
        sequence, start_a = self.clips.index[i]
        low = max(0, start_a - self.max_gap)
        high = min(self.starts_per_sequence[sequence] - 1, start_a + self.max_gap)
        start_b = int(torch.randint(low, high + 1, ()).item())
        return sequence, start_a, start_b

    def window(self, sequence: int, start: int) -> torch.Tensor:
        """uint8 (length, 3, H, W) frames of one window."""
        frames = self.pool.sequences[sequence].frames
        stop = start + (self.length - 1) * self.step + 1
        return torch.from_numpy(frames[start:stop:self.step].copy()).permute(0, 3, 1, 2)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        sequence, start_a, start_b = self.sample(i)
        clips = torch.stack([self.transform(self.window(sequence, s)) for s in (start_a, start_b)])
        return {"clips": clips, "sequence": sequence,
                "starts": torch.tensor([start_a, start_b], dtype=torch.long)}
