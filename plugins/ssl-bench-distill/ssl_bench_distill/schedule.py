"""DistillSelf's learning rate: one cosine per stage, as the official code's two jobs.

xmed-lab/DistillingSelf runs stage 1 (teacher head, ``--onlyfc``) and stage 2 (student,
``--distill=1``) as two ``main_moco.py`` jobs, each with ``--cos``: ``adjust_learning_rate``
sets ``lr = lr0 * 0.5 * (1 + cos(pi * epoch / epochs))`` at the start of every epoch of that job,
so each stage starts at the peak ``lr0`` (0.01) and decays to (almost) 0.

The harness runs one pretraining for both stages, and its single cosine would start stage 2
at half the peak. To give each stage its own cosine, the method returns
:func:`stage_cosine_factor` from :meth:`ssl_bench.api.Method.lr_factor`, which the harness
applies to the optimiser before every step. The value is a function of the training progress
only, so it survives a resumed run. Departure: the decay is per step (the harness's unit), not
per epoch.
"""

from __future__ import annotations

import math


def stage_cosine_factor(progress: float, teacher_fraction: float) -> float:
    """Learning-rate factor at ``progress`` in [0, 1]: stage 1 is ``[0, f)`` and stage 2
    ``[f, 1]`` (``f = teacher_fraction``), each with its own cosine from 1 to 0:
    ``0.5 * (1 + cos(pi * s))`` with ``s`` the progress within the stage."""
    p = min(max(progress, 0.0), 1.0)
    f = teacher_fraction
    within = p / f if p < f else (p - f) / (1.0 - f)
    return 0.5 * (1.0 + math.cos(math.pi * min(within, 1.0)))


__all__ = ["stage_cosine_factor"]
