"""The end of one pretraining step, shared by the single-process and the DDP paths."""

from __future__ import annotations

from typing import Any

import torch

from ssl_bench.errors import CellFailure


class NonFiniteLoss(CellFailure):
    """A pretraining loss became NaN or infinite."""


def apply_losses(losses: dict[str, torch.Tensor], optim_wrapper: Any, where: str
                 ) -> dict[str, torch.Tensor]:
    """Refuse a non-finite loss, then backward + optimiser step; the detached losses go to
    mmengine's logs."""
    loss = losses["loss"]
    if not torch.isfinite(loss.detach()).all():
        raise NonFiniteLoss(f"non-finite pretraining loss ({float(loss.detach())}) at {where}")
    optim_wrapper.update_params(loss)
    return {k: v.detach() for k, v in losses.items()}


__all__ = ["NonFiniteLoss", "apply_losses"]
