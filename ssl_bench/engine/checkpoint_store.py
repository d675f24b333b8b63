"""The checkpoint store: where the harness keeps pretrained checkpoints, how it writes and
reads them, and whether one is cached.

A pretraining's checkpoint is ``<cache>/checkpoints/<method>/<key>.safetensors`` (``key``: its
content address, :func:`ssl_bench.engine.pretrain.checkpoint_key`) with a JSON sidecar beside
it (``<key>.json``: the sha256 of the checkpoint's bytes, the config, steps, seconds, health
figures); its mmengine work folder (logs, resume state) is ``<cache>/work_dirs/<method>/<key>/``.
This module is the only place these paths are spelled.

"Cached" has one meaning everywhere: the checkpoint matches the sha256 in its sidecar
(:func:`checkpoint_is_intact`). The sidecar is written after the checkpoint, so a torn write,
a missing sidecar or a later bit flip all count as not cached, and the pretraining runs again.
Checkpoints are safetensors: loading one never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file
from torch import nn

from ssl_bench import atomic
from ssl_bench.api import Method


@dataclass(frozen=True)
class CheckpointStore:
    """The checkpoints under one cache folder (``<results>/cache``)."""

    cache_root: Path

    def path(self, method_id: str, key: str) -> Path:
        """Where the checkpoint of content address ``key`` lives (its sidecar beside it)."""
        return self.cache_root / "checkpoints" / method_id / f"{key}.safetensors"

    def work_dir(self, method_id: str, key: str) -> Path:
        """The mmengine work folder of a pretraining (logs and resume state)."""
        return self.cache_root / "work_dirs" / method_id / key

    def is_cached(self, method_id: str, key: str) -> bool:
        """Whether the checkpoint is in the store and intact (:func:`checkpoint_is_intact`)."""
        return checkpoint_is_intact(self.path(method_id, key))


def sidecar_path(ckpt: Path) -> Path:
    """The JSON sidecar of a checkpoint."""
    return ckpt.with_suffix(".json")


def checkpoint_lock(ckpt: Path) -> FileLock:
    """The file lock that one process holds while it checks and fills ``ckpt`` (creates the
    checkpoint's folder)."""
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(ckpt) + ".lock")


def has_files(ckpt: Path) -> bool:
    """Whether the checkpoint or its sidecar is there (intact or not)."""
    return ckpt.exists() or sidecar_path(ckpt).exists()


def discard(ckpt: Path) -> None:
    """Remove a damaged checkpoint and its sidecar: a damaged file is recomputed, never used."""
    ckpt.unlink(missing_ok=True)
    sidecar_path(ckpt).unlink(missing_ok=True)


def read_sidecar(ckpt: Path) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint (empty when unreadable)."""
    try:
        data = json.loads(sidecar_path(ckpt).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_sidecar(ckpt: Path, data: dict[str, Any]) -> None:
    """Replace a checkpoint's sidecar, atomically."""
    atomic.write_json(sidecar_path(ckpt), data)


def save_checkpoint(ckpt: Path, net: nn.Module, method: Method, key: str, pool_fingerprint: str,
                    seed: int, steps: int, seconds: float,
                    extras: dict[str, Any] | None = None) -> None:
    """Write the safetensors checkpoint, then its JSON sidecar (with the sha256), atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic.write_with(ckpt, lambda tmp: save_file(_untie(state), str(tmp)))
    write_sidecar(ckpt, {
        **(extras or {}),
        "method": method.meta.id, "version": method.meta.version, "key": key,
        "config": method.config.model_dump(mode="json"), "pool": pool_fingerprint,
        "seed": seed, "steps": steps, "seconds": seconds, "sha256": file_sha256(ckpt),
    })


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_is_intact(ckpt: Path) -> bool:
    """True when ``ckpt`` matches the sha256 in its ``.json`` sidecar. The sidecar is written
    after the checkpoint, so a torn write, a missing sidecar or a later bit flip all fail."""
    try:
        recorded = json.loads(sidecar_path(ckpt).read_text()).get("sha256")
        return isinstance(recorded, str) and file_sha256(ckpt) == recorded
    except (OSError, ValueError, AttributeError):
        return False


def _untie(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses shared storage: clone tensors that alias another."""
    seen: set[int] = set()
    out = {}
    for k, v in state.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else -1
        out[k] = v.clone() if ptr in seen else v
        if ptr != -1:
            seen.add(ptr)
    return out


def load_pretrained(method: Method, checkpoint: Path) -> nn.Module:
    """Rebuild ``method``'s model and load a safetensors checkpoint (no pickle involved)."""
    net = method.build()
    state = load_file(str(checkpoint))
    net.load_state_dict(state)
    return net


__all__ = ["CheckpointStore", "checkpoint_is_intact", "checkpoint_lock", "discard",
           "file_sha256", "has_files", "load_pretrained", "read_sidecar", "save_checkpoint",
           "sidecar_path", "write_sidecar"]
