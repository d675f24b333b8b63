"""Laparoflow-SSL method: dataset items, a training step, the loss falls, the encoder."""

from __future__ import annotations

import pytest
import torch

from ssl_bench.testing import first_batch, fit_fixed_batch, smoke_method, tiny_pool
from ssl_bench_laparoflow.method import LaparoflowSSL

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_pretrain_dataset_items_and_flow_cache_reuse() -> None:
    torch.manual_seed(0)
    method = smoke_method(LaparoflowSSL)
    pool = tiny_pool("surgical", 32)
    data = method.pretrain_dataset(pool)
    # pairs never cross a sequence; video units give (t, t+1), 4-frame clips too
    assert len(data) == sum(max(len(s.frames) - 1, 1) for s in pool.sequences)
    batch = first_batch(data, batch_size=4)
    assert batch["view1"].shape == (4, 3, 32, 32) and batch["view1"].dtype == torch.float32
    assert batch["grid1"].shape == (4, 16, 2) and batch["flow"].shape == (4, 16, 2)
    assert bool((batch["grid1"].abs() <= 1).all()) and bool((batch["grid2"].abs() <= 1).all())
    computed = data.flow_cache.computed
    assert computed == 4
    # a second method instance over the same cache dir computes nothing new
    again = LaparoflowSSL(method.config, method.context).pretrain_dataset(pool)
    first_batch(again, batch_size=4)
    assert again.flow_cache.computed == 0 and again.flow_cache.hits == 4


def test_training_step_loss_falls_and_encoder_shapes() -> None:
    torch.manual_seed(0)
    method = smoke_method(LaparoflowSSL)
    model = method.build()
    batch = first_batch(method.pretrain_dataset(tiny_pool("surgical", 32)), batch_size=4)
    out = method.training_step(model, batch, 0.0)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    losses = fit_fixed_batch(method, model, batch, steps=6, lr=1e-3)
    assert losses[-1] < losses[0]
    enc = method.encoder(model)
    maps = enc(torch.rand(2, 3, 32, 32))
    assert [m.shape[1] for m in maps] == enc.channels and enc.strides == [8]
    assert maps[0].shape[-2:] == (4, 4)


def test_ct_pool_works() -> None:
    method = smoke_method(LaparoflowSSL)
    batch = first_batch(method.pretrain_dataset(tiny_pool("ct", 32)), batch_size=4)
    out = method.training_step(method.build(), batch, 0.5)
    assert torch.isfinite(out["loss"])
