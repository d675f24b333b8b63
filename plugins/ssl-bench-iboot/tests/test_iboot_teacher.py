"""iBoot's frozen image teacher: the pooled penultimate feature of the ImageNet classifier
(1280-d for EfficientNet-Lite0), or of a local classifier file."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from ssl_bench.backbones import CNNEncoder, PooledFeatureEncoder
from ssl_bench.errors import SSLBenchError
from ssl_bench.testing import smoke_method
from ssl_bench_iboot.method import IBoot, IBootModel
from ssl_bench_iboot.teacher import load_teacher_backbone


def test_teacher_embeds_the_pooled_penultimate_feature() -> None:
    """The shared pooled-feature teacher (tested against the classifier in the core suite)."""
    teacher = load_teacher_backbone()
    assert isinstance(teacher, PooledFeatureEncoder) and teacher.embed_dim == 1280
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    model = smoke_method(IBoot).build()
    assert isinstance(model, IBootModel)
    assert model.image_head.out_features == 1280  # the linear head maps into the teacher's space


def test_teacher_from_a_local_classifier_file(tmp_path: Path) -> None:
    torch.manual_seed(3)
    source = timm.create_model("efficientnet_lite0")
    torch.save(source.state_dict(), tmp_path / "lite0.pth")
    teacher = load_teacher_backbone("efficientnet_lite0", str(tmp_path / "lite0.pth"))
    assert torch.equal(teacher.body.state_dict()["conv_head.weight"],
                       source.state_dict()["conv_head.weight"])
    # the features_only part stops before conv_head: refused, naming the first missing tensor
    torch.save(CNNEncoder("efficientnet_lite0").body.state_dict(), tmp_path / "features.pth")
    with pytest.raises(SSLBenchError, match="lack .*conv_head"):
        load_teacher_backbone("efficientnet_lite0", str(tmp_path / "features.pth"))
    with pytest.raises(SSLBenchError, match="no offline ImageNet"):
        load_teacher_backbone("resnet18", None)
