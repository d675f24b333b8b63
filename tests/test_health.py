"""Pretraining health: the collapse criterion, RankMe and the loss trajectory (per stage for a
multi-stage method) by hand, and the broken control flagged end to end."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from ssl_bench.engine.health import (
    RANKME_EPS,
    embedding_std,
    encoder_health,
    health_batch,
    loss_trajectory,
    rankme,
    step_stage,
)
from ssl_bench.leaderboard_text import health_text
from ssl_bench.records import iter_records
from ssl_bench.testing import CollapsedEncoder, DummyMethod, TinyConvEncoder, cli_exit_code


def test_rankme_by_hand() -> None:
    # singular values 3 and 1 (orthogonal columns): p = (0.75, 0.25) (+eps)
    emb = torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    p = np.array([0.75, 0.25]) + RANKME_EPS
    assert rankme(emb) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-9)
    # rank-one embeddings: one direction
    one = torch.ones(5, 4) * torch.arange(1.0, 6.0)[:, None]
    assert rankme(one) == pytest.approx(1.0, abs=1e-5)
    # an orthonormal basis spreads evenly: the full rank
    assert rankme(torch.eye(6)) == pytest.approx(6.0, rel=1e-5)


def test_embedding_std_by_hand() -> None:
    # unit vectors e1 and e2: normalised already; per-dimension std (unbiased) of (1, 0) and
    # (0, 1) is 1/sqrt(2) each, mean 1/sqrt(2)
    emb = torch.tensor([[2.0, 0.0], [0.0, 5.0]])
    assert embedding_std(emb) == pytest.approx(1 / math.sqrt(2))
    assert embedding_std(torch.ones(4, 3)) == pytest.approx(0.0)


def test_loss_trajectory_takes_the_first_and_last_tenth() -> None:
    losses = [float(i) for i in range(20)]  # 10% of 20 = 2 steps
    assert loss_trajectory(losses) == {"loss_first": 0.5, "loss_last": 18.5, "loss_steps": 20}
    assert loss_trajectory([4.0, 2.0, 1.0]) == {"loss_first": 4.0, "loss_last": 1.0,
                                                "loss_steps": 3}
    assert loss_trajectory([])["loss_first"] is None


def test_loss_trajectory_within_each_stage() -> None:
    # stage 1: 10 steps from 10 down to 1; stage 2: 20 steps from 7.0 down to 5.1
    first = [float(10 - i) for i in range(10)]
    second = [7.0 - 0.1 * i for i in range(20)]
    losses, stages = first + second, [1] * 10 + [2] * 20
    out = loss_trajectory(losses, stages)
    assert out["loss_stages"] == [
        {"stage": 1, "loss_first": 10.0, "loss_last": 1.0, "loss_steps": 10},
        {"stage": 2, "loss_first": pytest.approx(6.95), "loss_last": pytest.approx(5.15),
         "loss_steps": 20},
    ]
    # the top-level trend is the last stage's, never stage 1's start against stage 2's end
    assert (out["loss_first"], out["loss_last"], out["loss_steps"]) == (
        pytest.approx(6.95), pytest.approx(5.15), 20)
    # one stage (or no stage indices): the figures of the whole run, no per-stage list
    assert loss_trajectory(first, [1] * 10) == loss_trajectory(first) == {
        "loss_first": 10.0, "loss_last": 1.0, "loss_steps": 10}
    with pytest.raises(ValueError, match="one per step"):
        loss_trajectory(first, [1, 2])


def test_step_stage_reads_the_loss_dict() -> None:
    assert step_stage({"loss": torch.tensor(1.0), "stage": torch.tensor(2.0)}) == 2
    assert step_stage({"loss": torch.tensor(1.0), "stage": 3}) == 3
    assert step_stage({"loss": torch.tensor(1.0)}) == 1


def test_multi_stage_health_and_its_leaderboard_text() -> None:
    torch.manual_seed(0)
    frames = (np.random.default_rng(0).random((16, 32, 32, 3)) * 255).astype(np.uint8)
    health = encoder_health(TinyConvEncoder(), frames, torch.device("cpu"),
                            [9.0, 8.0, 3.0, 2.0], [1, 1, 2, 2])
    assert [s["stage"] for s in health["loss_stages"]] == [1, 2]
    assert (health["loss_first"], health["loss_last"]) == (3.0, 2.0)
    text = health_text(health)
    assert "loss 3→2" in text and "9" not in text.split("loss")[1]


def test_health_batch_is_seeded_and_without_replacement() -> None:
    sequences = [np.full((5, 4, 4, 3), i, np.uint8) for i in range(4)]
    a, b = health_batch(sequences, n=8, seed=0), health_batch(sequences, n=8, seed=0)
    assert np.array_equal(a, b) and len(a) == 8
    assert not np.array_equal(a, health_batch(sequences, n=8, seed=1))
    assert len(health_batch(sequences, n=100)) == 20


def test_collapsed_encoder_is_flagged_and_a_random_cnn_is_not() -> None:
    torch.manual_seed(0)
    frames = (np.random.default_rng(0).random((64, 32, 32, 3)) * 255).astype(np.uint8)
    inner = TinyConvEncoder()
    healthy = encoder_health(inner, frames, torch.device("cpu"))
    broken = encoder_health(CollapsedEncoder(inner), frames, torch.device("cpu"), [2.0, 1.0])
    assert not healthy["collapsed"] and healthy["rankme"] > 3
    assert broken["collapsed"] and broken["embedding_std_ratio"] < 1e-3
    assert broken["loss_first"] == 2.0 and broken["n_frames"] == 64


def test_the_broken_control_is_flagged_through_the_pipeline(testing_plugin, tmp_path,
                                                            capsys) -> None:
    results = tmp_path / "results"
    assert cli_exit_code(["run", "--methods", "dummy,collapsed-control", "--benchmarks",
                          "tiny-seg", "--profile", "smoke", "--seeds", "0", "--label-frac", "0.5",
                          "--results", str(results), "--quiet"]) == 0
    health = {r.method.id: r.health for r in iter_records(results)[0]}
    assert health["collapsed-control"]["collapsed"] is True
    assert health["dummy"]["collapsed"] is False
    board = (results / "leaderboard" / "leaderboard.md").read_text()
    (row,) = [line for line in board.splitlines() if "| collapsed-control" in line]
    assert "COLLAPSED" in row


class _TwoStageDummy(DummyMethod):
    """The dummy method whose loss dict says stage 1 for its first two steps, then stage 2
    (with a loss 10 higher: another objective)."""

    profiles = {"smoke": {**DummyMethod.profiles["smoke"], "max_steps": 5}}

    def training_step(self, model: torch.nn.Module, batch: Any, progress: float
                      ) -> dict[str, torch.Tensor]:
        loss = super().training_step(model, batch, progress)["loss"]
        stage = 1 if progress < 0.3 else 2
        return {"loss": loss + 10.0 * (stage - 1), "stage": torch.tensor(float(stage))}


def test_pretraining_records_each_steps_stage_for_the_health(tmp_path) -> None:
    """Through the real Runner and the checkpoint cache: the sidecar's health has one loss
    trajectory per stage, and the top-level figures are the last stage's."""
    from ssl_bench.engine.pretrain import pretrain_cached
    from ssl_bench.testing import smoke_method, tiny_pool

    method = smoke_method(_TwoStageDummy)
    seen: list[tuple[list[float], list[int]]] = []

    def health(net: torch.nn.Module, losses: list[float], stages: list[int]) -> dict[str, Any]:
        seen.append((list(losses), list(stages)))
        return loss_trajectory(losses, stages)

    pool = tiny_pool("surgical")
    result = pretrain_cached(method, pool.fingerprint, lambda: pool, tmp_path, 0,
                             lambda _m: None, health=health)
    losses, stages = seen[0]
    assert stages == [1, 1, 2, 2, 2] and len(losses) == 5
    figures = result.health
    assert figures is not None
    assert [s["stage"] for s in figures["loss_stages"]] == [1, 2]
    assert [s["loss_steps"] for s in figures["loss_stages"]] == [2, 3]
    assert figures["loss_first"] > 9.0  # stage 2's own start, not stage 1's
