"""The endless pretraining loader: same batches as epoch-by-epoch passes, and no epoch-boundary
pause inside mmengine's iteration loop."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
import torch

from ssl_bench.engine.loader import EndlessLoader
from ssl_bench.engine.pretrain import run_pretraining
from ssl_bench.testing import DummyMethod, smoke_method, tiny_pool

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_endless_loader_yields_the_epochs_of_a_plain_loader_in_order() -> None:
    data = torch.arange(10)
    plain = torch.utils.data.DataLoader(data, batch_size=4, shuffle=True, drop_last=True,
                                        generator=torch.Generator().manual_seed(3))
    expected = [b.tolist() for _ in range(3) for b in plain]
    endless = EndlessLoader(data, batch_size=4, shuffle=True, drop_last=True,
                            generator=torch.Generator().manual_seed(3))
    got = [b.tolist() for b in itertools.islice(iter(endless), len(expected) + 2)]
    assert got[:len(expected)] == expected and len(got) == len(expected) + 2
    assert len(endless) == 2  # one epoch's length, as mmengine and its logs expect


def test_endless_loader_tells_a_distributed_sampler_each_new_epoch() -> None:
    data = torch.arange(8)
    sampler = torch.utils.data.DistributedSampler(data, num_replicas=2, rank=0, shuffle=True,
                                                  seed=0)
    endless = EndlessLoader(data, batch_size=2, sampler=sampler)
    batches = [b.tolist() for b in itertools.islice(iter(endless), 6)]  # 3 epochs of 2
    epochs = [sorted(sum(batches[i:i + 2], [])) for i in range(0, 6, 2)]
    assert sampler.epoch == 2
    orders = [sum(batches[i:i + 2], []) for i in range(0, 6, 2)]
    assert len({tuple(o) for o in orders}) > 1  # reshuffled per epoch, not one order repeated
    assert all(len(e) == 4 for e in epochs)


def test_pretraining_over_many_epochs_never_pauses_between_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    real_sleep = time.sleep

    def recording_sleep(seconds: float) -> None:
        pauses.append(seconds)
        real_sleep(min(seconds, 0.01))

    monkeypatch.setattr(time, "sleep", recording_sleep)
    pool = tiny_pool(size=32)
    method = smoke_method(DummyMethod, batch_size=len(pool) // 2, epochs=4, max_steps=None)
    _net, steps = run_pretraining(method, pool, tmp_path / "run", 0, log=lambda _m: None)
    assert steps >= 6  # several epoch boundaries crossed
    assert not [s for s in pauses if s >= 1.0]


def test_loader_workers_are_capped_by_the_cores_the_process_may_use(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import warnings

    from ssl_bench.engine.loader import PREFETCH_FACTOR, loader_options

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    data = torch.arange(16)
    with pytest.warns(UserWarning, match="worker processes"):  # torch's own check, uncapped
        torch.utils.data.DataLoader(data, num_workers=8).check_worker_number_rationality()
    options = loader_options(8, cuda=False)
    assert options == {"num_workers": 2, "pin_memory": False, "persistent_workers": True,
                       "prefetch_factor": PREFETCH_FACTOR}
    assert loader_options(8, cuda=True)["pin_memory"] is True
    assert loader_options(0, cuda=True) == {"num_workers": 0, "pin_memory": True}
    loader = EndlessLoader(data, batch_size=4, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loader.check_worker_number_rationality()
        first = next(iter(loader))  # two worker processes really start and feed
    assert first.tolist() == [0, 1, 2, 3]
