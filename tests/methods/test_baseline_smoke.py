"""Smoke pretraining of each baseline: a few steps on one fixed batch lower the loss, the
checkpoint round-trips, and the downstream encoder has the advertised maps."""

from __future__ import annotations

import pytest
import torch

from ssl_bench.api import PROFILES, Method
from ssl_bench.default_plugins.methods import METHODS
from ssl_bench.default_plugins.methods.byol import BYOL
from ssl_bench.default_plugins.methods.dino import DINO
from ssl_bench.default_plugins.methods.imagenet import ImageNet
from ssl_bench.default_plugins.methods.mae import MAE
from ssl_bench.default_plugins.methods.moco_v2 import MoCoV2
from ssl_bench.default_plugins.methods.random_init import RandomInit
from ssl_bench.default_plugins.methods.simclr import SimCLR
from ssl_bench.default_plugins.methods.supervised import Supervised
from ssl_bench.testing import first_batch, fit_fixed_batch, smoke_method, tiny_pool

SSL_METHODS: list[type[Method]] = [SimCLR, MoCoV2, BYOL, DINO, MAE]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_registered_ids_and_profiles() -> None:
    ids = [m.meta.id for m in METHODS]
    assert ids == ["random-init", "imagenet", "supervised", "bn-adapt", "bn-adapt-random",
                   "simclr", "moco-v2", "byol", "dino", "mae"]
    for registered in METHODS:  # registered by path; load() checks meta and profile names
        method = registered.load()
        assert set(method.profiles) == set(PROFILES)
        for profile in PROFILES:
            config = method.make_config(profile)
            assert config.image_size == {"smoke": 32, "cpu": 64, "paper": 224}[profile]
    assert Supervised.meta.protocol == "finetune"
    for method in (RandomInit, ImageNet, Supervised):
        assert method.meta.pretrain_input == "none"
        assert method.meta.domains == ("surgical", "ct")
        assert method.meta.provides == {"frame-features", "spatial-features"}


@pytest.mark.parametrize("cls", [RandomInit, Supervised])
def test_no_pretraining_rows_are_random_and_seeded(cls: type[Method]) -> None:
    method = smoke_method(cls)
    torch.manual_seed(0)
    a = method.encoder(method.build())
    torch.manual_seed(0)
    b = method.encoder(method.build())
    torch.manual_seed(1)
    c = method.encoder(method.build())
    wa, wb, wc = (next(e.parameters()) for e in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    maps = a(torch.rand(2, 3, 32, 32))
    assert [m.shape[1] for m in maps] == a.channels and a.strides == [4, 8, 16, 32]


@pytest.mark.parametrize("cls", SSL_METHODS, ids=lambda c: c.meta.id)
def test_smoke_step_lowers_loss_on_fixed_batch(cls: type[Method]) -> None:
    torch.manual_seed(0)
    method = smoke_method(cls)
    model = method.build()
    dataset = method.pretrain_dataset(tiny_pool("surgical", size=32))
    batch = first_batch(dataset, batch_size=8)
    losses = fit_fixed_batch(method, model, batch, steps=4, lr=1e-3)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]

    # the checkpoint (state dict) rebuilds the same encoder
    rebuilt = method.build()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 32, 32)
    enc, enc2 = method.encoder(model).eval(), method.encoder(rebuilt).eval()
    with torch.no_grad():
        maps, maps2 = enc(x), enc2(x)
    assert [m.shape[1] for m in maps] == enc.channels
    assert all(torch.allclose(m, m2, atol=1e-5) for m, m2 in zip(maps, maps2))
    assert enc.frame_features(x).shape == (2, enc.embed_dim)


def test_ct_pool_works() -> None:
    method = smoke_method(SimCLR)
    batch = first_batch(method.pretrain_dataset(tiny_pool("ct", size=32)), batch_size=4)
    assert [v.shape for v in batch] == [(4, 3, 32, 32)] * 2
    assert float(method.training_step(method.build(), batch, 0.0)["loss"].detach()) > 0


def test_momentum_targets_follow_online_networks() -> None:
    torch.manual_seed(0)
    byol = smoke_method(BYOL)
    model = byol.build()
    online = next(model.backbone.parameters())
    target = next(model.backbone_target.parameters())
    assert torch.equal(online, target) and not target.requires_grad
    with torch.no_grad():
        online.add_(1.0)
    before = target.detach().clone()
    byol.after_step(model, progress=0.0)  # tau = 0.996
    assert torch.allclose(target, 0.996 * before + 0.004 * online, atol=1e-6)
    byol.after_step(model, progress=1.0)  # tau = 1: the target stays
    assert torch.allclose(target, 0.996 * before + 0.004 * online, atol=1e-6)


def test_dino_freezes_last_layer_early_and_uses_local_crops() -> None:
    torch.manual_seed(0)
    method = smoke_method(DINO, num_local_crops=2, freeze_last_layer_frac=2.0)
    model = method.build()
    batch = first_batch(method.pretrain_dataset(tiny_pool("surgical", size=32)), batch_size=4)
    assert [v.shape[-1] for v in batch] == [32, 32, 16, 16]
    before = model.student_head.last_layer.weight_v.detach().clone()
    fit_fixed_batch(method, model, batch, steps=2, lr=1e-2)
    assert torch.equal(model.student_head.last_layer.weight_v, before)
    assert model.teacher_head.last_layer.weight_v.requires_grad is False


def test_mae_masks_three_quarters_and_encoder_sees_all_patches() -> None:
    torch.manual_seed(0)
    method = smoke_method(MAE)
    model = method.build()
    n = model.num_patches
    assert n == 16  # 32 px, 8 px patches
    from lightly.models.utils import random_token_mask

    idx_keep, idx_mask = random_token_mask((2, n + 1), mask_ratio=0.75)
    assert idx_mask.shape == (2, 12) and idx_keep.shape == (2, 5)  # class token + 4 patches
    pred = model.reconstruct(torch.rand(2, 3, 32, 32), idx_keep, idx_mask)
    assert pred.shape == (2, 12, 8 * 8 * 3)
    # every encoder weight is stored once, under the downstream encoder's name
    keys = model.state_dict().keys()
    assert any(k.startswith("encoder.vit.") for k in keys)
    assert not any(k.startswith("masked_vit") for k in keys)
    maps = method.encoder(model)(torch.rand(2, 3, 32, 32))
    assert maps[0].shape == (2, 96, 4, 4)
