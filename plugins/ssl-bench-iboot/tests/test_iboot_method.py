"""iBoot end to end on the tiny pool: frozen teacher, BYOL-without-EMA image term against a
hand computation, the clip-BYOL project addition, loss falls, causal frame features."""

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


#: frames large enough for a non-zero teacher target: at 32 px the ImageNet Lite0's last map
#: is 1 x 1 and its ReLU6 zeroes almost every pooled feature, so cosines would be undefined
HAND_SIZE = 64


@pytest.fixture(scope="module")
def batch_64() -> dict:
    torch.manual_seed(0)
    method = smoke_method(IBoot, image_size=HAND_SIZE)
    return first_batch(method.pretrain_dataset(tiny_pool("surgical", HAND_SIZE)), batch_size=4)


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


def _byol_term(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean over rows of 2 - 2 cos, written out."""
    dot = (prediction * target).sum(-1)
    return (2 - 2 * dot / (prediction.norm(dim=-1) * target.norm(dim=-1))).mean()


def test_default_is_byol_without_ema_against_the_other_view(batch_64) -> None:
    """Two views of the same frames; the linear head on the student's view-1 features predicts
    the frozen teacher's embedding of view 2 (and vice versa); no EMA network."""
    torch.manual_seed(0)
    method = smoke_method(IBoot, image_size=HAND_SIZE)
    model = method.build()
    assert isinstance(model.image_head, torch.nn.Linear)
    assert not hasattr(model, "target") and not hasattr(model, "projector")
    batch = batch_64
    clips = batch["clips"]
    assert torch.equal(batch["starts"][:, 0], batch["starts"][:, 1])  # the same frames ...
    assert not torch.equal(clips[:, 0], clips[:, 1])  # ... augmented differently
    model.eval()  # BatchNorm on running statistics: the two computations see the same network
    out = method.training_step(model, batch, 0.0)
    assert set(out) == {"loss", "image"}
    with torch.no_grad():
        h = [model.student.clip_features(clips[:, v]).flatten(0, 1) for v in (0, 1)]
        t = [model.teacher.embed(clips[:, v].flatten(0, 1)) for v in (0, 1)]
        w, b = model.image_head.weight, model.image_head.bias
        expected = (_byol_term(h[0] @ w.T + b, t[1]) + _byol_term(h[1] @ w.T + b, t[0])) / 2
        same_view = (_byol_term(h[0] @ w.T + b, t[0]) + _byol_term(h[1] @ w.T + b, t[1])) / 2
    assert float(out["image"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)
    assert abs(float(expected) - float(same_view)) > 1e-4  # the view matters
    # nothing to update after a step
    state = {k: v.clone() for k, v in model.state_dict().items()}
    method.after_step(model, 0.5)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_version_1_setting_keeps_the_clip_byol_project_addition() -> None:
    torch.manual_seed(0)
    method = smoke_method(IBoot, clip_byol_addition=True, teacher_view="same-view",
                          mapping_head="mlp", max_gap=8, image_size=HAND_SIZE)
    batch = first_batch(method.pretrain_dataset(tiny_pool("surgical", HAND_SIZE)), batch_size=4)
    model = method.build()
    assert not isinstance(model.image_head, torch.nn.Linear)
    model.eval()
    out = method.training_step(model, batch, 0.0)
    assert set(out) == {"loss", "image", "clip_byol"}
    assert float(out["loss"].detach()) == pytest.approx(
        float(out["image"]) + float(out["clip_byol"]), rel=1e-6)
    clips = batch["clips"]
    with torch.no_grad():  # same-view: the teacher embeds the student's own frames
        h = [model.student.clip_features(clips[:, v]).flatten(0, 1) for v in (0, 1)]
        t = [model.teacher.embed(clips[:, v].flatten(0, 1)) for v in (0, 1)]
        expected = (_byol_term(model.image_head(h[0]), t[0])
                    + _byol_term(model.image_head(h[1]), t[1])) / 2
    assert float(out["image"]) == pytest.approx(float(expected), rel=1e-5)
    model.train()
    opt = torch.optim.AdamW(method.parameters_to_optimize(model), lr=1e-3)
    method.training_step(model, batch, 0.0)["loss"].backward()
    opt.step()
    method.after_step(model, 0.5)
    # the EMA target moved towards the student but is not it
    assert not torch.equal(model.target.frames.body.conv_stem.weight,
                           model.student.frames.body.conv_stem.weight)


def test_other_view_needs_the_same_frames_in_both_views() -> None:
    with pytest.raises(SSLBenchError, match="max_gap=0"):
        IBoot.make_config("smoke", {"max_gap": 4})
    IBoot.make_config("smoke", {"max_gap": 4, "teacher_view": "same-view"})


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
