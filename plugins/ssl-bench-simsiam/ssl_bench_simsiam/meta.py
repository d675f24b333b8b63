"""The metadata of the ``simsiam`` method, apart from its code: this module imports no torch, so
that the plugin can register the method by import path (:class:`ssl_bench.lazy.LazyClass`)
and ``ssl-bench list`` never imports it. :class:`ssl_bench_simsiam.method.SimSiam` takes its
``meta`` from here.
"""

from __future__ import annotations

from ssl_bench.meta import DEFAULT_CNN, MethodMeta

SIMSIAM_META = MethodMeta(
    id="simsiam",
    version="3",  # 2: CT views keep intensities and laterality (AugmentPolicy);
    # 3: starts from the ImageNet weights (imagenet_init)
    kind="pretrain",
    name="SimSiam",
    paper="Chen & He, Exploring Simple Siamese Representation Learning, CVPR 2021",
    url="https://arxiv.org/abs/2011.10566",
    description=("Siamese views with predictor and stop-gradient (worked example plugin); "
                 "from ImageNet weights"),
    backbone=DEFAULT_CNN,
)
