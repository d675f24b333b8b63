"""Seeding of every random number generator a cell touches.

The engine seeds each cell before it calls the task (so a task that never seeds still gets a
reproducible cell), and the built-in tasks seed again with the cell's seed through the same
function (:func:`ssl_bench.task_toolkit.seed_everything` is this one).
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed python's ``random``, numpy's global generator and torch's; return a fresh local
    ``torch.Generator`` seeded with ``seed`` as well, for shuffling that must not depend on how
    many global draws other code made."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


__all__ = ["seed_everything"]
