"""iBoot end to end on the tiny pool: frozen teacher, loss falls, causal frame features."""

from __future__ import annotations

import pytest
import torch
from ssl_bench.errors import SSLBenchError
from ssl_bench.testing import first_batch, fit_fixed_batch, smoke_method, tiny_pool
from ssl_bench_iboot.method import IBoot, IBootModel
from ssl_bench_iboot.teacher import load_teacher_backbone


@pytest.fixture(scope="module")
def batch() -> dict:
    torch.manual_seed(0)
    method = smoke_method(IBoot)
    return first_batch(method.pretrain_dataset(tiny_pool("surgical", 32)), batch_size=4)


def test_meta_declares_frame_features_only() -> None:
    assert IBoot.meta.provides == frozenset({"frame-features"})
    assert IBoot.meta.domains == ("surgical",)
    assert IBoot.meta.pretrain_input == "clips"
    for profile in ("smoke", "cpu", "paper"):
        IBoot.make_config(profile)
    with pytest.raises(SSLBenchError, match="receptive field"):
        IBoot.make_config("smoke", {"clip_length": 2, "temporal_layers": 2})


def test_teacher_never_changes_and_loss_falls(batch) -> None:
    method = smoke_method(IBoot)
    model = method.build()
    assert isinstance(model, IBootModel)
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    params = method.parameters_to_optimize(model)
    assert not any(p is q for p in params for q in model.teacher.parameters())
    assert batch["clips"].shape == (4, 2, 3, 3, 32, 32)
    losses = fit_fixed_batch(method, model, batch, steps=6, lr=1e-3)
    assert losses[-1] < losses[0]
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    assert model.teacher.training is False
    after = model.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics
    fresh = load_teacher_backbone()
    assert all(torch.equal(fresh.state_dict()[k], after[k]) for k in after)
    # the EMA target moved towards the student but is not it
    assert not torch.equal(model.target.frames.body.conv_stem.weight,
                           model.student.frames.body.conv_stem.weight)


def test_frame_features_are_causal_sliding_clips() -> None:
    torch.manual_seed(0)
    method = smoke_method(IBoot, clip_length=5, temporal_layers=2)
    model = method.build()
    encoder = method.encoder(model)
    with torch.no_grad():  # non-zero temporal weights, so context matters
        for conv in encoder.temporal.convs:
            conv.weight.normal_(0, 0.2)
            conv.bias.normal_(0, 0.1)
    encoder.eval()
    frames = torch.rand(9, 3, 32, 32)
    feats = encoder.frame_features(frames, batch_size=4)
    assert feats.shape == (9, encoder.embed_dim)
    # changing the future never changes the past
    changed = frames.clone()
    changed[6:] = torch.rand(3, 3, 32, 32)
    feats_changed = encoder.frame_features(changed)
    torch.testing.assert_close(feats_changed[:6], feats[:6])
    assert not torch.allclose(feats_changed[6:], feats[6:])
    # equal to a sliding clip of clip_length (5) frames ending at each frame
    with torch.no_grad():
        for t in range(9):
            clip = frames[max(0, t - 4): t + 1][None]
            torch.testing.assert_close(encoder.clip_features(clip)[0, -1], feats[t],
                                       rtol=1e-4, atol=1e-5)
    # and the context is used: differs from the single-frame embedding
    assert not torch.allclose(encoder.embed(frames), feats)


def test_checkpoint_round_trip() -> None:
    method = smoke_method(IBoot)
    model = method.build()
    rebuilt = method.build()
    rebuilt.load_state_dict(model.state_dict())
    encoder = method.encoder(rebuilt)
    encoder.eval()
    x = torch.rand(2, 3, 32, 32)
    assert [m.shape[1] for m in encoder(x)] == encoder.channels
