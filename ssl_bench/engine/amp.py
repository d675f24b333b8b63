"""Mixed precision in pretraining: mmengine's optimiser wrapper with an autocast context.

The engine's training step (:func:`ssl_bench.engine.steps.apply_losses`, in the single-process
and the DDP model alike) runs ``method.training_step`` inside ``optim_wrapper.optim_context``
and steps through ``optim_wrapper.update_params``; :class:`PrecisionOptimWrapper` puts the
autocast of the run's precision into the first and a ``torch.amp.GradScaler`` (fp16 only) into
the second, so a method's code is the same in every precision. mmengine's own
``AmpOptimWrapper`` refuses to run without a GPU, so the CPU tests could not exercise it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from ssl_bench.precision import autocast


def _module_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


class PrecisionOptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` whose ``optim_context`` autocasts to ``precision`` (``fp32``,
    ``bf16``, ``fp16``) on the device the model's parameters are on, and whose backward and
    step go through a ``GradScaler`` under fp16 (its state is saved with the optimiser's, so
    a resumed run keeps its loss scale)."""

    def __init__(self, optimizer: torch.optim.Optimizer, precision: str = "fp32",
                 **kwargs: Any) -> None:
        super().__init__(optimizer=optimizer, **kwargs)
        self.precision = precision
        self.loss_scaler: torch.amp.GradScaler | None = None
        if precision == "fp16":  # CUDA only (ssl_bench.precision.resolve_precision)
            self.loss_scaler = torch.amp.GradScaler("cuda")

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        with super().optim_context(model), autocast(self.precision, _module_device(model)):
            yield

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        if self.loss_scaler is None:
            super().backward(loss, **kwargs)
            return
        self.loss_scaler.scale(loss).backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs: Any) -> None:
        if self.loss_scaler is None:
            super().step(**kwargs)
            return
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.loss_scaler is not None:
            state["loss_scaler"] = self.loss_scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        scaler_state = state_dict.pop("loss_scaler", None)
        if self.loss_scaler is not None and scaler_state is not None:
            self.loss_scaler.load_state_dict(scaler_state)
        super().load_state_dict(state_dict)


__all__ = ["PrecisionOptimWrapper"]
