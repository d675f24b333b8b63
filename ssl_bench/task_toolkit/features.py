"""Frozen-encoder features: their cache keys, the per-frame features of a video, and the one
per-channel standardisation the built-in tasks apply to features before a head.

Under the ``linear`` protocol an encoder's outputs depend only on (checkpoint, dataset content,
unit, image size, precision), so they are computed once per run and kept in the run's
:class:`~ssl_bench.cache.ArrayCache` (:attr:`ssl_bench.api.CellInputs.cache`): every label
fraction and seed of one checkpoint reuses them. Fine-tuned weights differ per cell, so their
features are never cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ssl_bench.api import CellInputs, Encoder, Unit, UnitData
from ssl_bench.precision import autocast
from ssl_bench.task_toolkit.data import load_unit, to_float_images


def feature_key(cell: CellInputs, kind: str, unit: Unit, fingerprint: str) -> str:
    """Cache key of a frozen-encoder output of ``kind`` (e.g. ``"frame-features"``) for one
    unit; ``fingerprint`` is the dataset's :meth:`~ssl_bench.api.Dataset.fingerprint`
    (computed once per cell: it may walk the disk). Features computed under autocast have
    their own keys (the precision is appended; fp32 keys carry none)."""
    key = (f"{kind}/{cell.checkpoint_id}/{cell.dataset.meta.id}-{fingerprint}/{unit.split}/"
           f"{unit.id}/size{cell.image_size}")
    return key if cell.precision == "fp32" else f"{key}/{cell.precision}"


def frame_feature_entry(cell: CellInputs, encoder: Encoder, unit: Unit, fingerprint: str | None,
                        batch_size: int, need: str, loaded: dict[str, UnitData] | None = None,
                        fps: float = 1.0) -> dict[str, np.ndarray]:
    """Per-frame features of one video (``Encoder.frame_features``, float32 ``(T, C)``) with
    every per-frame label it has (``"phases"`` ``(T,)``, ``"tools"`` ``(T, K)``).

    With a ``fingerprint`` (linear protocol) the entry is cached under
    ``feature_key(cell, "frame-features", ...)``, so tasks on the same videos (phase
    recognition and tool presence) share one extraction per (checkpoint, video); an entry
    cached without the label ``need`` (written by a task that did not store it) is recomputed
    and replaced. Without one (fine-tuned weights) it is computed from ``loaded`` data (frames
    already at ``fps``) or a fresh load. The caller checks that ``need`` is in the result (a
    dataset without that label). Frames are sampled at ``fps``; features at 1 fps are kind
    ``frame-features``, other rates ``frame-features-<fps>fps``.
    """

    def compute() -> dict[str, np.ndarray]:
        data = loaded[unit.id] if loaded and unit.id in loaded else load_unit(cell, unit, fps)
        frames = to_float_images(data.frames, cell.device)
        with torch.no_grad(), autocast(cell.precision, cell.device):
            feats = encoder.frame_features(frames, batch_size=batch_size)
        arrays = {"features": feats.float().cpu().numpy()}
        if data.phases is not None:
            arrays["phases"] = np.asarray(data.phases, dtype=np.int64)
        if data.tools is not None:
            arrays["tools"] = np.asarray(data.tools, dtype=np.uint8)
        return arrays

    if fingerprint is None:
        return compute()
    kind = "frame-features" if fps == 1.0 else f"frame-features-{fps:g}fps"
    key = feature_key(cell, kind, unit, fingerprint)
    entry = cell.cache.get_or_compute(key, compute)
    if need not in entry:
        entry = compute()
        if need in entry:
            cell.cache.save(key, entry)
    return entry


#: the smallest divisor :class:`Standardization` uses: a channel whose std is below it (a
#: constant or near-constant channel, e.g. a dead ReLU) is divided by this instead
STD_FLOOR = 1e-5


@dataclass(frozen=True, eq=False)
class Standardization:
    """Per-channel ``(x - mean) / scale`` with the mean and std of training features: a linear
    probe's usual normalisation (a BatchNorm without affine in front of the head), so that the
    arbitrary scale of an encoder's features, which a head trained for a fixed budget would
    feel as a learning rate, does not decide a comparison.

    The statistics come from the labelled training frames only (never val or test), in
    float64, over every axis but the channel axis; ``scale`` is the std floored at
    :data:`STD_FLOOR`. ``mean`` and ``scale`` are float64 ``(C,)`` arrays.
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, channel_axis: int = -1) -> Standardization:
        """Statistics of ``features`` (e.g. ``(N, C)`` frame features, or ``(N, C, H, W)``
        maps with ``channel_axis=1``)."""
        x = np.asarray(features, dtype=np.float64)
        channel = channel_axis % x.ndim
        axes = tuple(a for a in range(x.ndim) if a != channel)
        return cls(x.mean(axis=axes), np.maximum(x.std(axis=axes), STD_FLOOR))

    @classmethod
    def identity(cls, channels: int) -> Standardization:
        """Mean 0 and scale 1: :meth:`apply` returns the features unchanged (as float32)."""
        return cls(np.zeros(channels), np.ones(channels))

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Channels-last ``features`` standardised, computed in float64, returned as float32."""
        x = np.asarray(features, dtype=np.float64)
        return ((x - self.mean) / self.scale).astype(np.float32)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, scale)`` as float32 ``(C,)`` tensors, for a module that standardises its
        inputs itself (e.g. :meth:`ssl_bench.heads.fpn.FPNDecoder.standardize_inputs`)."""
        return (torch.from_numpy(np.asarray(self.mean)).float(),
                torch.from_numpy(np.asarray(self.scale)).float())


__all__ = ["feature_key", "frame_feature_entry", "Standardization", "STD_FLOOR"]
