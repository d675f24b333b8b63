"""MMS heads: with K = 2 classes the projectors and classifiers read the one foreground logit
``z1 - z0`` (the code's one-channel prediction); with K > 2 they read the K logits."""

from __future__ import annotations

import pytest
import torch

from ssl_bench.testing import smoke_method
from ssl_bench_mms.method import MMSMethod, mms_losses
from ssl_bench_mms.networks import MMSModel, head_input


def _record_inputs(model: MMSModel) -> dict[str, list[torch.Tensor]]:
    """Hook every head; each hook keeps a copy of the tensor the head is called with."""
    seen: dict[str, list[torch.Tensor]] = {}
    for name in ("projector1", "projector2", "classifier1", "classifier2"):
        seen[name] = []

        def keep(_module: torch.nn.Module, args: tuple[torch.Tensor, ...],
                 store: list[torch.Tensor] = seen[name]) -> None:
            store.append(args[0].detach().clone())

        getattr(model, name).register_forward_pre_hook(keep)
    return seen


def _net_outputs(model: MMSModel) -> dict[str, list[torch.Tensor]]:
    """Hook both networks; each hook keeps a copy of every logit map they return."""
    seen: dict[str, list[torch.Tensor]] = {"net1": [], "net2": []}
    for name in seen:
        def keep(_module: torch.nn.Module, _args: tuple[torch.Tensor, ...], out: torch.Tensor,
                 store: list[torch.Tensor] = seen[name]) -> None:
            store.append(out.detach().clone())

        getattr(model, name).register_forward_hook(keep)
    return seen


def test_two_class_heads_read_the_foreground_logit() -> None:
    torch.manual_seed(0)
    method = smoke_method(MMSMethod)
    model = method.build(2).eval()  # eval: the networks give the same logits on every call
    heads = _record_inputs(model)
    nets = _net_outputs(model)
    x1, x2, xu = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    y1, y2 = torch.randint(0, 2, (2, 32, 32)), torch.randint(0, 2, (2, 32, 32))
    mms_losses(model, x1, y1, x2, y2, xu, method.config, ignore_index=255)

    # networks: labelled batch first, then the unlabelled batch
    (lab1, unl1), (lab2, unl2) = nets["net1"], nets["net2"]
    assert lab1.shape == (2, 2, 32, 32)
    expected = {"classifier1": lab1, "classifier2": lab2, "projector1": unl1, "projector2": unl2}
    for name, logits in expected.items():
        (got,) = heads[name]
        assert got.shape == (2, 1, 32, 32), name
        torch.testing.assert_close(got, logits[:, 1:2] - logits[:, 0:1])
    for name in expected:
        first_conv = getattr(model, name).stages[0][0]
        assert first_conv.in_channels == 1


def test_multi_class_heads_read_all_logits() -> None:
    torch.manual_seed(0)
    method = smoke_method(MMSMethod)
    model = method.build(4).eval()
    heads = _record_inputs(model)
    x, xu = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    y = torch.randint(0, 4, (2, 32, 32))
    mms_losses(model, x, y, x, y, xu, method.config, ignore_index=255)
    assert all(inputs[0].shape == (2, 4, 32, 32) for inputs in heads.values())
    assert model.projector1.stages[0][0].in_channels == 4


@pytest.mark.parametrize("k", [2, 3])
def test_head_input(k: int) -> None:
    logits = torch.randn(2, k, 4, 4)
    out = head_input(logits)
    if k == 2:
        assert torch.equal(out, logits[:, 1:2] - logits[:, 0:1])
        # the softmax foreground probability is the sigmoid of the head's input
        torch.testing.assert_close(torch.sigmoid(out[:, 0]), logits.softmax(dim=1)[:, 1])
    else:
        assert out is logits
