"""The ``imagenet`` row carries the real ImageNet EfficientNet-Lite0 weights: its encoder equals
the classifier's trunk, and through it two stock photos classify correctly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssl_bench.backbones import imagenet_classifier
from ssl_bench.default_plugins.methods.imagenet import ImageNet
from ssl_bench.testing import smoke_method

skimage_data = pytest.importorskip("skimage.data")

CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _photo(image) -> torch.Tensor:
    x = torch.from_numpy(image).permute(2, 0, 1).float().unsqueeze(0) / 255.0
    return F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)


def test_imagenet_encoder_classifies_stock_photos() -> None:
    method = smoke_method(ImageNet)
    encoder = method.encoder(method.build()).eval()
    classifier = imagenet_classifier()
    reference = classifier.state_dict()
    body = encoder.body.state_dict()
    assert len(body) > 200
    for key, value in body.items():  # same names in timm's features_only trunk
        assert torch.equal(value, reference[key]), key

    photos = torch.cat([_photo(skimage_data.chelsea()), _photo(skimage_data.coffee())])
    with torch.no_grad():
        last = encoder(photos)[-1]  # stride-32 map, the encoder normalises internally
        # the classifier head on the encoder's trunk: conv_head, bn2 (+act), pool, fc
        logits = classifier.forward_head(classifier.bn2(classifier.conv_head(last)))
        direct = classifier((photos - 0.5) / 0.5)
    assert torch.allclose(logits, direct, atol=1e-4)
    top = logits.argmax(dim=1).tolist()
    assert top[0] in CAT_CLASSES, top
    assert top[1] == ESPRESSO, top


def test_generic_ssl_rows_start_from_the_imagenet_trunk() -> None:
    """simclr, moco-v2, byol, dino and simsiam build their encoder from the ImageNet weights
    (``imagenet_init``, default True); ``imagenet_init=False`` gives random init; another
    backbone with the default is one line naming the fix."""
    from ssl_bench.default_plugins.methods.byol import BYOL
    from ssl_bench.default_plugins.methods.dino import DINO
    from ssl_bench.default_plugins.methods.moco_v2 import MoCoV2
    from ssl_bench.default_plugins.methods.simclr import SimCLR
    from ssl_bench.errors import SSLBenchError
    from ssl_bench_simsiam.method import SimSiam

    reference = imagenet_classifier().state_dict()
    key = "conv_stem.weight"
    for cls in (SimCLR, MoCoV2, BYOL, DINO, SimSiam):
        method = smoke_method(cls)
        body = method.encoder(method.build()).body.state_dict()
        assert torch.equal(body[key], reference[key]), cls.__name__
        assert all(torch.equal(v, reference[k]) for k, v in body.items()), cls.__name__
        scratch = smoke_method(cls, imagenet_init=False)
        assert not torch.equal(scratch.encoder(scratch.build()).body.state_dict()[key],
                               reference[key]), cls.__name__
    with pytest.raises(SSLBenchError, match="imagenet_init=false") as err:
        smoke_method(SimCLR, backbone="resnet18").build()
    assert "\n" not in str(err.value)


def test_the_pooled_teacher_is_the_classifiers_penultimate_feature() -> None:
    """The frozen image teacher of the distillation plugins (DistillSelf, iBoot): the ImageNet
    classifier's pooled 1280-d feature (conv_head + bn2 + ReLU6), its input normalised."""
    from ssl_bench.backbones import frozen_pooled_classifier

    teacher = frozen_pooled_classifier()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        embedding = teacher.embed(x)
        classifier = imagenet_classifier()
        pre_logits = classifier.forward_head(classifier.forward_features((x - 0.5) / 0.5),
                                             pre_logits=True)
    assert teacher.embed_dim == 1280 and embedding.shape == (2, 1280)
    torch.testing.assert_close(embedding, pre_logits)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
