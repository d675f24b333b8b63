import torch

from ssl_bench.testing import first_batch, fit_fixed_batch, smoke_method, tiny_pool
from ssl_bench_simsiam import SimSiam


def test_simsiam_loss_is_negative_cosine_and_falls() -> None:
    torch.manual_seed(0)  # the model's init and the views' draws
    method = smoke_method(SimSiam)
    model = method.build()
    batch = first_batch(method.pretrain_dataset(tiny_pool(size=32)), batch_size=8)
    out = method.training_step(model, batch, 0.0)
    assert -1.0 <= float(out["loss"].detach()) <= 1.0
    losses = fit_fixed_batch(method, model, batch, steps=6, lr=0.05)
    assert losses[-1] < losses[0]


def test_simsiam_encoder_gives_multiscale_maps() -> None:
    method = smoke_method(SimSiam)
    maps = method.encoder(method.build())(torch.rand(2, 3, 32, 32))
    assert [m.shape[1] for m in maps] == method.encoder(method.build()).channels
