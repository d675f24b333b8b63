"""The metadata of the ``iboot`` method, apart from its code: this module imports no torch, so
that the plugin can register the method by import path (:class:`ssl_bench.lazy.LazyClass`)
and ``ssl-bench list`` never imports it. :class:`ssl_bench_iboot.method.IBoot` takes its
``meta`` from here.
"""

from __future__ import annotations

from ssl_bench.meta import DEFAULT_CNN, MethodMeta

IBOOT_META = MethodMeta(
    id="iboot",
    version="3",
    kind="pretrain",
    name="iBoot",
    paper="Saleh, Tan, Bulat, Tzimiropoulos, Martinez. iBoot: Image-bootstrapped "
          "Self-Supervised Video Representation Learning. arXiv:2206.08339, 2022",
    url="https://arxiv.org/abs/2206.08339",
    description="BYOL without EMA: a causal video encoder (frame CNN + temporal conv) "
                "with a linear head predicts a frozen ImageNet model's embedding of the "
                "other augmented view of each frame",
    pretrain_input="clips",
    domains=("surgical",),
    provides=frozenset({"frame-features"}),
    backbone=f"{DEFAULT_CNN}+causal-temporal-conv",
)
