"""Named budgets. Every method and task takes its settings from one of these profiles.

* ``smoke``: seconds per cell; what the test suite uses.
* ``cpu``: the default without a GPU; the whole default run takes minutes on 2 cores.
* ``paper``: the hyperparameters of each method's paper (image size, epochs, batch, backbone).
"""

from __future__ import annotations

from ssl_bench.api import PROFILES

#: square frame size used by pools and downstream tasks under each profile
IMAGE_SIZE: dict[str, int] = {"smoke": 32, "cpu": 64, "paper": 224}


#: the pretraining seeds of each profile when ``--pretraining`` is not given: ``per-seed`` (seed
#: s of a cell pretrains with seed s, so the seeds of a row are independent pretraining runs and
#: the bootstrap's top level resamples them) or ``shared`` (every seed reads one pretraining run,
#: and the tables say their differences are about those checkpoints). ``smoke`` and ``cpu``
#: pretrain per seed: their pretrainings take seconds to minutes, and one shared run per method
#: let a board's significance calls change with the CPU it ran on. ``paper`` shares one run: a
#: paper pretraining takes GPU-hours to GPU-days per method, three of them triple that.
PRETRAINING_DEFAULT: dict[str, str] = {"smoke": "per-seed", "cpu": "per-seed", "paper": "shared"}
PRETRAINING_MODES: tuple[str, ...] = ("per-seed", "shared")

#: the seeds of each profile when ``--seeds`` is not given. ``cpu`` runs five: with three, a
#: row whose difference changes sign on one seed cannot get a bootstrap p below 2/27, so a
#: significance call meant "every seed agrees in sign"; with five the bootstrap weighs the size
#: of the difference. Two disjoint boards of five make the same calls more often than two of
#: three on every benchmark and baseline (``benchmarks/validity/seed_budget.json``, seeds 0-9
#: pooled), at 5/3 of three seeds' time. ``smoke`` (tests) and ``paper`` (GPU-days per
#: pretraining) keep three.
SEEDS_DEFAULT: dict[str, tuple[int, ...]] = {"smoke": (0, 1, 2), "cpu": (0, 1, 2, 3, 4),
                                             "paper": (0, 1, 2)}


def default_profile(device: str, data_root: object | None) -> str:
    """The profile when ``--profile`` is not given: ``paper`` only on a CUDA device with real
    data (``--data-root``); ``cpu`` everywhere else. The synthetic suite (no ``--data-root``)
    runs ``cpu`` on every device, so ``make run`` on a GPU machine does not start the paper
    budgets (GPU-days) on synthetic data; ``--profile paper`` still asks for them."""
    return "paper" if device.startswith("cuda") and data_root is not None else "cpu"


__all__ = ["PROFILES", "IMAGE_SIZE", "PRETRAINING_DEFAULT", "PRETRAINING_MODES",
           "SEEDS_DEFAULT", "default_profile"]
