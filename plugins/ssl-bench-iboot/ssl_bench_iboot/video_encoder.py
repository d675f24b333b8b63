"""The iBoot student: a per-frame CNN followed by a small causal temporal convolution.

The temporal module is ``layers`` residual blocks ``x + GELU(conv1d(left_pad(x)))`` with
kernel ``kernel``; output frame ``t`` depends only on frames ``t - R + 1 .. t`` with receptive
field ``R = 1 + layers * (kernel - 1)``. The convolutions start at zero, so at initialisation
the video encoder equals the frame encoder. Because the per-frame CNN is applied frame by frame
(BatchNorm in eval mode downstream) and the temporal module is causal and shift-invariant,
one pass over a whole sequence gives, at every frame, exactly the feature of a sliding clip of
at least ``R`` frames ending at that frame (a clip truncated at the sequence start for the
first ``R - 1`` frames).
"""

from __future__ import annotations

import torch
from torch import nn

from ssl_bench.api import Encoder
from ssl_bench.backbones import CNNEncoder


class CausalTemporalConv(nn.Module):
    """(B, T, D) -> (B, T, D); frame t sees frames <= t only."""

    def __init__(self, dim: int, kernel: int = 3, layers: int = 2) -> None:
        super().__init__()
        self.kernel = kernel
        convs = [nn.Conv1d(dim, dim, kernel) for _ in range(layers)]
        for conv in convs:
            nn.init.zeros_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        self.convs = nn.ModuleList(convs)
        self.act = nn.GELU()

    @property
    def receptive_field(self) -> int:
        return 1 + len(self.convs) * (self.kernel - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)  # (B, D, T)
        for conv in self.convs:
            h = h + self.act(conv(nn.functional.pad(h, (self.kernel - 1, 0))))
        return h.transpose(1, 2)


class VideoEncoder(Encoder):
    """Downstream view: ``forward``/maps are the per-frame CNN's; ``frame_features`` adds the
    causal temporal context (phase recognition)."""

    def __init__(self, frames: CNNEncoder, temporal: CausalTemporalConv) -> None:
        super().__init__(frames.channels, frames.strides)
        self.frames = frames
        self.temporal = temporal

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.frames(x)

    def clip_features(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) in [0, 1] -> (B, T, D) causal per-frame features."""
        b, t = clips.shape[:2]
        per_frame = self.frames.embed(clips.flatten(0, 1)).view(b, t, -1)
        return self.temporal(per_frame)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Independent images: each is a one-frame clip."""
        return self.temporal(self.frames.embed(x)[:, None])[:, 0]

    @torch.no_grad()
    def frame_features(self, frames: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Ordered frames (T, 3, H, W) -> (T, D): at frame t, the feature of the causal clip
        ending at t (one pass: the temporal module is causal and shift-invariant)."""
        if len(frames) == 0:
            return frames.new_zeros((0, self.embed_dim))
        per_frame = torch.cat([self.frames.embed(frames[i:i + batch_size])
                               for i in range(0, len(frames), batch_size)])
        return self.temporal(per_frame[None])[0]
