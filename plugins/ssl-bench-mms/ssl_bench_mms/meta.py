"""The metadata of the ``mms`` method, apart from its code: this module imports no torch, so
that the plugin can register the method by import path (:class:`ssl_bench.lazy.LazyClass`)
and ``ssl-bench list`` never imports it. :class:`ssl_bench_mms.method.MMSMethod` takes its
``meta`` from here.
"""

from __future__ import annotations

from ssl_bench.meta import DEFAULT_CNN, MethodMeta

MMS_META = MethodMeta(
    id="mms",
    version="5",
    kind="semi-supervised",
    name="MMS (Min-Max Similarity)",
    paper=("Lou, Tawfik, Yao, Liu, Noble. Min-Max Similarity: A Contrastive Semi-Supervised "
           "Deep Learning Network for Surgical Tools Segmentation. IEEE TMI 42(10), 2023. "
           "arXiv:2203.15177"),
    url="https://github.com/AngeLouCN/Min_Max_Similarity",
    description=("two U-Nets on the two halves of the labelled set; pixel-wise contrastive "
                 "consistency on unlabelled predictions and an all-negative term on "
                 "labelled ones"),
    pretrain_input="none",
    domains=("surgical", "ct"),
    provides=frozenset({"segmentation-predictor"}),
    backbone=f"{DEFAULT_CNN} (ImageNet) + U-Net decoder, x2",
)
