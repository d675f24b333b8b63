"""RepRec method: a training step, the loss falls on a fixed batch, the hybrid encoder."""

from __future__ import annotations

import pytest
import torch

from ssl_bench.testing import first_batch, fit_fixed_batch, smoke_method, tiny_pool
from ssl_bench_reprec.method import RepRec

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_loss_falls_on_fixed_batch_and_logs_both_terms() -> None:
    torch.manual_seed(0)
    method = smoke_method(RepRec)
    model = method.build()
    batch = first_batch(method.pretrain_dataset(tiny_pool("ct", 32)), batch_size=4)
    out = method.training_step(model, batch, 0.0)
    assert set(out) == {"loss", "contrastive", "recovery"}
    assert torch.allclose(out["loss"].detach(), out["contrastive"] + out["recovery"])
    losses = fit_fixed_batch(method, model, batch, steps=6, lr=1e-3)
    assert losses[-1] < losses[0]


def test_staged_schedule_skips_recovery_before_start() -> None:
    method = smoke_method(RepRec, recovery_start=0.5)
    model = method.build()
    batch = first_batch(method.pretrain_dataset(tiny_pool("surgical", 32)), batch_size=4)
    assert float(method.training_step(model, batch, 0.2)["recovery"]) == 0.0
    assert float(method.training_step(model, batch, 0.6)["recovery"]) > 0.0


@pytest.mark.parametrize("topology", ["stacked", "parallel"])
def test_hybrid_encoder_channels_strides_and_state_dict_roundtrip(topology: str) -> None:
    torch.manual_seed(0)
    method = smoke_method(RepRec, topology=topology)
    model = method.build()
    enc = method.encoder(model)
    assert enc.strides == [4, 8, 16, 32]
    maps = enc(torch.rand(2, 3, 32, 32))
    assert [m.shape[1] for m in maps] == enc.channels
    assert [m.shape[-1] for m in maps] == [8, 4, 2, 1]
    assert enc.channels[1] == model.cnn.channels[1] + model.masked_vit.vit.embed_dim
    assert enc.embed(torch.rand(2, 3, 32, 32)).shape == (2, enc.embed_dim)
    # the harness rebuilds the model and loads the checkpoint
    fresh = method.build()
    fresh.load_state_dict(model.state_dict())
    fresh.eval(), model.eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a = method.encoder(model)(x)
        b = method.encoder(fresh)(x)
    assert all(torch.allclose(p, q) for p, q in zip(a, b))


def test_stacked_encoder_runs_the_transformer_on_the_cnn_tokens() -> None:
    """Downstream, the transformer map depends on the image only through the CNN map."""
    torch.manual_seed(0)
    method = smoke_method(RepRec)
    model = method.build().eval()
    enc = method.encoder(model)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        maps = list(model.cnn(x))
        got = enc.transformer_map(x, maps)
        assert torch.equal(enc.transformer_map(torch.zeros_like(x), maps), got)
        maps[1] = maps[1] + torch.randn_like(maps[1])
        assert not torch.allclose(enc.transformer_map(x, maps), got)
    assert got.shape == (1, model.masked_vit.vit.embed_dim, 4, 4)
