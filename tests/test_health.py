"""Pretraining health: the collapse criterion, RankMe and the loss trajectory by hand, and the
broken control flagged end to end."""

from __future__ import annotations

import math

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
)
from ssl_bench.records import iter_records
from ssl_bench.testing import CollapsedEncoder, TinyConvEncoder, cli_exit_code


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
