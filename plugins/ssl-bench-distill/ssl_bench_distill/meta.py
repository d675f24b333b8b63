"""The metadata of the ``distill-self`` method, apart from its code: this module imports no
torch, so that the plugin can register the method by import path
(:class:`ssl_bench.lazy.LazyClass`) and ``ssl-bench list`` never imports it.
:class:`ssl_bench_distill.method.DistillSelf` takes its ``meta`` from here.
"""

from __future__ import annotations

from ssl_bench.meta import DEFAULT_CNN, MethodMeta

DISTILL_SELF_META = MethodMeta(
    id="distill-self",
    version="3",
    kind="pretrain",
    name="DistillSelf",
    paper="Ding, Liu, Li. Free Lunch for Surgical Video Understanding by Distilling "
          "Self-Supervisions. MICCAI 2022. arXiv:2205.09292",
    url="https://github.com/xmed-lab/DistillingSelf",
    description="MoCo v2 student distilled (KL over the 1+K logits) from a frozen ImageNet "
                "backbone whose MoCo head is trained on the pool first",
    pretrain_input="frames",
    domains=("surgical", "ct"),
    provides=frozenset({"frame-features", "spatial-features"}),
    backbone=DEFAULT_CNN,
)
