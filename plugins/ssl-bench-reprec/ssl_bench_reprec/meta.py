"""The metadata of the ``reprec`` method, apart from its code: this module imports no torch, so
that the plugin can register the method by import path (:class:`ssl_bench.lazy.LazyClass`)
and ``ssl-bench list`` never imports it. :class:`ssl_bench_reprec.method.RepRec` takes its
``meta`` from here.
"""

from __future__ import annotations

from ssl_bench.meta import DEFAULT_CNN, MethodMeta

REPREC_META = MethodMeta(
    id="reprec",
    version="2",
    kind="pretrain",
    name="RepRec",
    paper=("Yan, Naushad, Sun, Han, Tang, Kong, Ma, You, Xie. Representation Recovering for "
           "Self-Supervised Pre-training on Medical Images. WACV 2023, pp. 2684-2694"),
    url=("https://researchconnect.stonybrook.edu/en/publications/"
         "representation-recovering-for-self-supervised-pre-training-on-med/"),
    description=("contrastive CNN (NT-Xent) + transformer recovering the CNN's masked "
                 "feature tokens; hybrid CNN+transformer encoder"),
    pretrain_input="frames",
    domains=("surgical", "ct"),
    backbone=f"{DEFAULT_CNN}+vit",
)
