"""``supervised``: supervised training on the labelled subset only (no pretraining).

The "supervised-only" row of semi-/self-supervised papers: the default CNN starts from a
random initialisation (seeded by the harness) and the downstream task always fine-tunes it end
to end on the labelled units of the cell (``meta.protocol = "finetune"``), whatever the
benchmark's own protocol is. It differs from ``random-init`` exactly there: ``random-init``
follows the benchmark protocol (e.g. a linear probe on frozen random features).

Departures: none (there is no paper recipe; the fine-tuning recipe is the task's).
"""

from __future__ import annotations

from ssl_bench.default_plugins.methods.metas import SUPERVISED_META
from ssl_bench.default_plugins.methods.random_init import PlainCNN


class Supervised(PlainCNN):
    """Random init, always fine-tuned on the labelled subset downstream."""

    meta = SUPERVISED_META
