"""Built-in baseline methods, registered through the ``register_methods`` hook.

No-pretraining reference rows (``random-init``, ``imagenet``, ``supervised``) and the standard
self-supervised baselines (``simclr``, ``moco-v2``, ``byol``, ``dino``, ``mae``); one module each.
"""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl
from ssl_bench.default_plugins.methods.byol import BYOL
from ssl_bench.default_plugins.methods.dino import DINO
from ssl_bench.default_plugins.methods.imagenet import ImageNet
from ssl_bench.default_plugins.methods.mae import MAE
from ssl_bench.default_plugins.methods.moco_v2 import MoCoV2
from ssl_bench.default_plugins.methods.random_init import RandomInit
from ssl_bench.default_plugins.methods.simclr import SimCLR
from ssl_bench.default_plugins.methods.supervised import Supervised

METHODS: list = [RandomInit, ImageNet, Supervised, SimCLR, MoCoV2, BYOL, DINO, MAE]


@hookimpl
def register_methods(register: Callable[[Any], None]) -> None:
    for method in METHODS:
        register(method)
