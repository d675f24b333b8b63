"""Numeric precision of a run (``--precision``) and the device settings that go with it.

* ``fp32``: every operation in float32 (on CUDA, matrix products and convolutions use TF32
  tensor cores, :func:`configure_device`).
* ``bf16``: forward passes under ``torch.autocast`` with bfloat16 (weights, optimiser state
  and gradients stay float32). bfloat16 has float32's exponent range, so no loss scaling.
* ``fp16``: autocast with float16 and a ``torch.amp.GradScaler`` (float16's range is narrow:
  small gradients would underflow to zero without scaling). CUDA only.

The default is ``bf16`` on a CUDA device that supports it and ``fp32`` elsewhere (CPU
autocast works, but gives no speed-up on most CPUs). Pretraining applies the precision in the
engine's optimiser wrapper (:mod:`ssl_bench.engine.amp`), so methods need not know about it;
a method whose loss is unsafe in reduced precision sets :attr:`ssl_bench.api.Method.
needs_fp32` and pretrains in fp32 whatever the run asks. Downstream tasks take the autocast
context from :func:`autocast` (:class:`TrainingPrecision` for their training loops).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ssl_bench.errors import SSLBenchError

if TYPE_CHECKING:
    from ssl_bench.api import Method

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
#: the precision of a record or cell identity written before precision was recorded
LEGACY_PRECISION = "fp32"
_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _device_type(device: torch.device | str) -> str:
    return torch.device(device).type


def default_precision(device: str) -> str:
    """``bf16`` on a CUDA device that supports bfloat16 (Ampere and newer), else ``fp32``."""
    if _device_type(device) == "cuda" and torch.cuda.is_available() \
            and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def resolve_precision(text: str | None, device: str) -> str:
    """``--precision``: one of :data:`PRECISIONS` that ``device`` can run, or the device's
    default (:func:`default_precision`) when None."""
    if text is None:
        return default_precision(device)
    if text not in PRECISIONS:
        raise SSLBenchError(f"--precision {text!r}: use {', '.join(PRECISIONS)}")
    on_cuda = _device_type(device) == "cuda"
    if text == "fp16" and not on_cuda:
        raise SSLBenchError("--precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    if text == "bf16" and on_cuda and torch.cuda.is_available() \
            and not torch.cuda.is_bf16_supported():
        raise SSLBenchError("--precision bf16: this GPU does not support bfloat16; "
                            "use fp16 or fp32")
    return text


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of ``precision`` on ``device`` (a no-op context for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(_device_type(device), dtype=_DTYPES[precision])


def pretraining_precision(method: "Method") -> str:
    """The precision ``method`` pretrains with: fp32 when it declares
    :attr:`~ssl_bench.api.Method.needs_fp32`, else the run's (its context's)."""
    if getattr(type(method), "needs_fp32", None):
        return "fp32"
    return method.context.precision


class TrainingPrecision:
    """Mixed precision for one training loop: :meth:`autocast` around the forward pass and
    loss, :meth:`backward_step` for backward plus optimiser step (through a GradScaler under
    fp16, plain otherwise)."""

    def __init__(self, precision: str, device: torch.device | str) -> None:
        self.precision = precision
        self.device = torch.device(device)
        self.scaler = (torch.amp.GradScaler(self.device.type) if precision == "fp16"
                       else None)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return autocast(self.precision, self.device)

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()


def configure_device(device: torch.device | str) -> None:
    """Process-wide CUDA settings: TF32 tensor cores for float32 matrix products and cuDNN
    convolutions (float32 range, 10-bit mantissa, several times faster on Ampere and newer).
    Nothing changes on a CPU."""
    if _device_type(device) == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def prepare_module(net: nn.Module, device: torch.device | str, compile: bool = False
                   ) -> nn.Module:
    """On CUDA, a module with 2-D convolutions (a CNN encoder) is put in channels-last memory
    format (what tensor-core convolutions read fastest). With ``compile``, each direct child
    module is compiled in place (``nn.Module.compile``: state-dict keys and checkpoints stay
    as they are; methods call their children, e.g. ``net.encoder``, not ``net`` itself)."""
    if _device_type(device) == "cuda" and any(isinstance(m, nn.Conv2d) for m in net.modules()):
        net = net.to(memory_format=torch.channels_last)
    if compile:
        for child in net.children():
            child.compile()
    return net


__all__ = ["LEGACY_PRECISION", "PRECISIONS", "TrainingPrecision", "autocast",
           "configure_device", "default_precision", "prepare_module", "pretraining_precision",
           "resolve_precision"]
