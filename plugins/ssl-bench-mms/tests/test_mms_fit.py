"""MMS training: the total loss without unlabelled data, and fit_segmentation end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssl_bench.api import SemiSupervisedData
from ssl_bench.testing import TinySegDataset, smoke_method
from ssl_bench_mms.losses import all_negative_loss, supervised_loss
from ssl_bench_mms.method import ROW_NOTE, MMSConfig, MMSMethod, mms_losses
from ssl_bench_mms.networks import SegPredictor


@pytest.mark.parametrize("empty", ["none", "zero-length"])
def test_without_unlabelled_frames_the_loss_is_the_labelled_loss(empty: str) -> None:
    torch.manual_seed(0)
    method = smoke_method(MMSMethod)
    cfg = method.config
    assert isinstance(cfg, MMSConfig)
    model = method.build(3).eval()  # eval: BN statistics identical across the two calls
    x1, x2 = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    y1, y2 = torch.randint(0, 3, (2, 32, 32)), torch.randint(0, 3, (2, 32, 32))
    xu = None if empty == "none" else torch.zeros(0, 3, 32, 32)
    out = mms_losses(model, x1, y1, x2, y2, xu, cfg, ignore_index=255)
    with torch.no_grad():
        l1, l2 = model.net1(x1), model.net2(x2)
        sup = supervised_loss(l1, y1, 255) + supervised_loss(l2, y2, 255)
        neg = all_negative_loss(model.classifier1(l1), model.classifier2(l2))
    expected = cfg.weight_sup * sup + cfg.weight_all_negative * neg
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-6)
    assert float(out["contrast"]) == 0.0 and float(out["diff"]) == 0.0


def test_unlabelled_terms_enter_the_loss_and_diff_has_no_gradient() -> None:
    torch.manual_seed(0)
    method = smoke_method(MMSMethod)
    model = method.build(2).eval()
    x = torch.rand(2, 3, 32, 32)
    y = torch.randint(0, 2, (2, 32, 32))
    xu = torch.rand(2, 3, 32, 32)
    with_u = mms_losses(model, x, y, x, y, xu, method.config, 255)
    without = mms_losses(model, x, y, x, y, None, method.config, 255)
    assert float(with_u["contrast"]) > 0 and float(with_u["diff"]) > 0
    cfg = method.config
    assert float((with_u["loss"] - without["loss"]).detach()) == pytest.approx(
        cfg.weight_diff * float(with_u["diff"]) + cfg.weight_contrast * float(with_u["contrast"]),
        rel=1e-5)
    # net 2 gets gradient from L_sup only: the contrastive keys are detached, L_diff is detached
    model.zero_grad()
    (with_u["loss"] - without["loss"]).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.net2.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net1.parameters())


def _semi_data(n_unlabelled_units: int, calls: list[float]) -> SemiSupervisedData:
    ds = TinySegDataset(".")
    train = [ds.load(u, 32) for u in ds.units() if u.split == "train"]
    val = [ds.load(u, 32) for u in ds.units() if u.split == "val"]

    def validate(predictor: torch.nn.Module) -> float:
        predictor.eval()
        hits = total = 0
        with torch.no_grad():
            for d in val:
                x = torch.from_numpy(d.frames).permute(0, 3, 1, 2).float() / 255.0
                pred = predictor(x).argmax(1).numpy()
                hits += int((pred == d.masks).sum())
                total += pred.size
        calls.append(hits / total)
        return hits / total

    labelled, unlabelled = train[:2], train[2:2 + n_unlabelled_units]
    unl = (np.concatenate([d.frames for d in unlabelled]) if unlabelled
           else np.zeros((0, 32, 32, 3), np.uint8))
    return SemiSupervisedData(
        labelled_frames=np.concatenate([d.frames for d in labelled]),
        labelled_masks=np.concatenate([d.masks for d in labelled]),
        unlabelled_frames=unl, num_classes=4, ignore_index=255, validate=validate,
        device=torch.device("cpu"), seed=0, profile="smoke")


@pytest.mark.parametrize("n_unlabelled_units", [4, 0])
def test_fit_segmentation_smoke_reports_network_1_with_network_2_alongside(
        n_unlabelled_units: int) -> None:
    calls: list[float] = []
    method = smoke_method(MMSMethod)
    predictor = method.fit_segmentation(_semi_data(n_unlabelled_units, calls))
    assert len(calls) == 2  # both networks scored on val after the last step
    assert isinstance(predictor, SegPredictor) and not predictor.training
    details = predictor.details
    assert details["reported_network"] == "network-1" and details["row_note"] == ROW_NOTE
    scores = [details["networks"][f"network-{k}"]["best_val_score"] for k in (1, 2)]
    assert scores == calls  # each network's own val score (network 1 scored first)
    other = predictor.extra_predictors["network-2"]
    assert isinstance(other, SegPredictor) and not other.training and other.net is not predictor.net
    for net in (predictor, other):
        out = net(torch.rand(3, 3, 32, 32))
        assert out.shape == (3, 4, 32, 32) and torch.isfinite(out).all()


def test_row_is_network_1_even_when_network_2_scores_better_on_val() -> None:
    """Version 1 returned the better network on val; now the row is always network 1."""
    seen: list[torch.nn.Module] = []
    data = _semi_data(0, [])

    def network_2_wins(predictor: torch.nn.Module) -> float:
        seen.append(predictor.net)
        return 1.0 if len(seen) % 2 == 0 else 0.0  # network 1 is scored first, then network 2

    data.validate = network_2_wins
    method = smoke_method(MMSMethod, max_steps=3, epochs=3)  # val after steps 2 (epoch) and 3
    predictor = method.fit_segmentation(data)
    assert len(seen) == 4
    assert predictor.net is seen[0] and predictor.extra_predictors["network-2"].net is seen[1]
    networks = predictor.details["networks"]
    assert networks["network-1"]["best_val_score"] == 0.0
    assert networks["network-2"]["best_val_score"] == 1.0
    assert networks["network-1"]["best_step"] == 2  # the first of equal scores is kept


def test_predictor_runs_at_input_hw_and_returns_input_size() -> None:
    method = smoke_method(MMSMethod)
    model = method.build(3).eval()
    seen: list[tuple[int, int]] = []
    model.net1.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
    predictor = SegPredictor(model.net1, (16, 24))
    out = predictor(torch.rand(1, 3, 32, 32))
    assert seen == [(16, 24)] and out.shape == (1, 3, 32, 32)
