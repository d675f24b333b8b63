"""The metadata of the ``laparoflow-ssl`` method, apart from its code: this module imports no
torch, so that the plugin can register the method by import path
(:class:`ssl_bench.lazy.LazyClass`) and ``ssl-bench list`` never imports it.
:class:`ssl_bench_laparoflow.method.LaparoflowSSL` takes its ``meta`` from here.
"""

from __future__ import annotations

from ssl_bench.meta import MethodMeta

LAPAROFLOW_SSL_META = MethodMeta(
    id="laparoflow-ssl",
    version="2",  # 2: CT views keep intensities and laterality (AugmentPolicy)
    kind="pretrain",
    name="Laparoflow-SSL",
    paper=("Moens, De Vylder, Blaschko, Tuytelaars. Laparoflow-SSL: Image Analysis From a "
           "Tiny Dataset Through Self-Supervised Transformers Leveraging Unlabeled Surgical "
           "Video. MIDL 2024, PMLR 250:986-1010"),
    url="https://proceedings.mlr.press/v250/moens24a.html",
    description=("ViT; pixel InfoNCE between two tracked views, pairs weighted by the "
                 "difference of their (Farneback) optical flows"),
    pretrain_input="frame-pairs",
    domains=("surgical", "ct"),
    backbone="vit",
)
