"""Named budgets. Every method and task takes its settings from one of these profiles.

* ``smoke``: seconds per cell; what the test suite uses.
* ``cpu``: the default without a GPU; the whole default run takes minutes on 2 cores.
* ``paper``: the hyperparameters of each method's paper (image size, epochs, batch, backbone).
"""

from __future__ import annotations

from ssl_bench.api import PROFILES

#: square frame size used by pools and downstream tasks under each profile
IMAGE_SIZE: dict[str, int] = {"smoke": 32, "cpu": 64, "paper": 224}


def default_profile(device: str) -> str:
    return "paper" if device.startswith("cuda") else "cpu"


__all__ = ["PROFILES", "IMAGE_SIZE", "default_profile"]
