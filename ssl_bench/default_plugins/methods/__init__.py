"""Built-in baseline methods, registered through the ``register_methods`` hook.

No-pretraining reference rows (``random-init``, ``imagenet``, ``supervised``), the batch-norm
adaptation controls (``bn-adapt``, ``bn-adapt-random``) and the standard
self-supervised baselines (``simclr``, ``moco-v2``, ``byol``, ``dino``, ``mae``); one module each.
They are registered by import path with their metadata (:mod:`.metas`), so loading this plugin
imports no torch; ``ssl-bench run`` imports a method's module when it needs the class.
"""

from __future__ import annotations

from typing import Any, Callable

from ssl_bench import hookimpl
from ssl_bench.default_plugins.methods import metas
from ssl_bench.lazy import LazyClass
from ssl_bench.meta import PROFILES

_PACKAGE = "ssl_bench.default_plugins.methods"

METHODS: tuple[LazyClass, ...] = (
    LazyClass(f"{_PACKAGE}.random_init:RandomInit", metas.RANDOM_INIT_META, PROFILES),
    LazyClass(f"{_PACKAGE}.imagenet:ImageNet", metas.IMAGENET_META, PROFILES),
    LazyClass(f"{_PACKAGE}.supervised:Supervised", metas.SUPERVISED_META, PROFILES),
    LazyClass(f"{_PACKAGE}.bn_adapt:BNAdapt", metas.BN_ADAPT_META, PROFILES),
    LazyClass(f"{_PACKAGE}.bn_adapt:BNAdaptRandom", metas.BN_ADAPT_RANDOM_META, PROFILES),
    LazyClass(f"{_PACKAGE}.simclr:SimCLR", metas.SIMCLR_META, PROFILES),
    LazyClass(f"{_PACKAGE}.moco_v2:MoCoV2", metas.MOCO_V2_META, PROFILES),
    LazyClass(f"{_PACKAGE}.byol:BYOL", metas.BYOL_META, PROFILES),
    LazyClass(f"{_PACKAGE}.dino:DINO", metas.DINO_META, PROFILES),
    LazyClass(f"{_PACKAGE}.mae:MAE", metas.MAE_META, PROFILES),
)


@hookimpl
def register_methods(register: Callable[[Any], None]) -> None:
    for method in METHODS:
        register(method)
