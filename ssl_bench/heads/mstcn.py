"""A causal multi-stage temporal convolutional network (MS-TCN) for online phase recognition.

Sources (facts only; the code is written here):

* Farha & Gall, "MS-TCN: Multi-Stage Temporal Convolutional Network for Action Segmentation",
  CVPR 2019 (public code ``yabufarha/ms-tcn``, ``model.py``): each stage is a 1x1 input conv,
  ``num_layers`` dilated residual layers (kernel 3, dilation ``2**i``, ReLU, 1x1 conv, dropout,
  residual add) and a 1x1 output conv; stage ``s > 1`` takes the softmax of stage ``s - 1``;
  loss = cross-entropy of every stage + 0.15 x truncated MSE between the log-softmax of
  neighbouring frames, clamped at tau**2 = 16 (tau = 4), the previous frame detached
  (``main.py``: 4 stages x 10 layers x 64 maps, Adam 5e-4, 50 epochs, one video per batch).
  The 0.15 weight here is MS-TCN's; the harness's default of 3 stages x 12 layers is its own
  choice (TeCNO uses 2 stages; 12 layers and 64 maps are DistillSelf's, below).
* Czempiel et al., "TeCNO: Surgical Phase Recognition with Multi-Stage Temporal Convolutional
  Networks", MICCAI 2020 (public code ``tobiascz/TeCNO``): the convolutions are *causal* (the
  output at frame t sees frames <= t only), so the model runs online.  Here causality comes from
  padding only on the left by ``2 * dilation`` frames.
* DistillSelf (Ding, Liu, Li, MICCAI 2022; ``xmed-lab/DistillingSelf``): its released
  ``train.py`` (``--model Base``) builds ``models/ms_tcn.py: BaseCausalTCN``, a *single-stage*
  causal TCN: ``nn.Dropout2d()`` (p 0.5) over the input feature channels (each feature channel
  zeroed for the whole video), then the 1x1 conv, 12 causal dilated residual layers of 64 maps
  (each with ``nn.Dropout()``, p 0.5) and the 1x1 output conv; loss = cross-entropy + 1.0 x the
  same truncated MSE (clamp 16).  ``CausalMSTCN(num_stages=1, input_dropout=0.5)`` is that
  model; ``num_stages = 3`` in that ``train.py`` is never used by it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: MS-TCN's smoothing-loss weight (lambda) and clamp (tau**2 with tau = 4); DistillSelf's
#: released train.py uses weight 1.0 with the same clamp
SMOOTHING_WEIGHT = 0.15
SMOOTHING_CLAMP = 16.0


class CausalDilatedResidualLayer(nn.Module):
    """Kernel-3 dilated conv over time that only looks back, then ReLU, 1x1 conv, dropout."""

    def __init__(self, dilation: int, channels: int, dropout: float) -> None:
        super().__init__()
        self.left_pad = 2 * dilation
        self.conv_dilated = nn.Conv1d(channels, channels, kernel_size=3, dilation=dilation)
        self.conv_1x1 = nn.Conv1d(channels, channels, kernel_size=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv_dilated(F.pad(x, (self.left_pad, 0))))
        return x + self.dropout(self.conv_1x1(out))


class SingleStageTCN(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, num_layers: int, channels: int,
                 dropout: float) -> None:
        super().__init__()
        self.conv_in = nn.Conv1d(in_dim, channels, kernel_size=1)
        self.layers = nn.ModuleList(
            CausalDilatedResidualLayer(2 ** i, channels, dropout) for i in range(num_layers))
        self.conv_out = nn.Conv1d(channels, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_in(x)
        for layer in self.layers:
            out = layer(out)
        return self.conv_out(out)


class CausalMSTCN(nn.Module):
    """``(B, in_dim, T)`` features -> ``(num_stages, B, num_classes, T)`` logits, causal in T.

    ``input_dropout > 0`` applies ``nn.Dropout2d`` to the input of the first stage, viewed as
    ``(B, in_dim, T, 1)``: in training, each feature channel of each video is zeroed over the
    whole video with that probability (DistillSelf's ``BaseCausalTCN``); 0 leaves the input as is.
    """

    def __init__(self, in_dim: int, num_classes: int, num_stages: int = 3, num_layers: int = 12,
                 channels: int = 64, dropout: float = 0.5, input_dropout: float = 0.0) -> None:
        super().__init__()
        if not 1 <= num_stages <= 8:
            raise ValueError(f"num_stages must be in [1, 8], got {num_stages}")
        if not 0.0 <= input_dropout < 1.0:
            raise ValueError(f"input_dropout must be in [0, 1), got {input_dropout}")
        # no module (and no random draw) when off, so the default model is unchanged
        self.input_dropout = nn.Dropout2d(input_dropout) if input_dropout > 0 else None
        self.stages = nn.ModuleList(
            [SingleStageTCN(in_dim, num_classes, num_layers, channels, dropout)]
            + [SingleStageTCN(num_classes, num_classes, num_layers, channels, dropout)
               for _ in range(num_stages - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_dropout is not None:
            x = self.input_dropout(x.unsqueeze(-1)).squeeze(-1)
        out = self.stages[0](x)
        outputs = [out]
        for stage in self.stages[1:]:
            out = stage(F.softmax(out, dim=1))
            outputs.append(out)
        return torch.stack(outputs)


def mstcn_loss(stage_logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100,
               smoothing_weight: float = SMOOTHING_WEIGHT,
               clamp: float = SMOOTHING_CLAMP) -> torch.Tensor:
    """Cross-entropy + truncated-MSE smoothing, summed over stages (MS-TCN).

    ``stage_logits``: (S, B, K, T); ``targets``: (B, T) with ``ignore_index`` on padding; the
    smoothing term only counts neighbouring frame pairs that are both valid.
    """
    valid = targets != ignore_index
    pair_valid = (valid[:, 1:] & valid[:, :-1]).unsqueeze(1)  # (B, 1, T-1)
    total = stage_logits.new_zeros(())
    for logits in stage_logits:
        total = total + F.cross_entropy(logits, targets, ignore_index=ignore_index)
        if logits.shape[-1] > 1 and smoothing_weight > 0:
            log_p = F.log_softmax(logits, dim=1)
            mse = (log_p[:, :, 1:] - log_p[:, :, :-1].detach()) ** 2
            mse = torch.clamp(mse, min=0.0, max=clamp)
            mask = pair_valid.expand_as(mse)
            if mask.any():
                total = total + smoothing_weight * mse[mask].mean()
    return total
