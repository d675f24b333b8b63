"""Distributed pretraining: torchrun with 2 CPU ranks (gloo) through mmengine's Runner + DDP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from torch import nn

from ssl_bench.engine import ddp as distributed
from ssl_bench.errors import SSLBenchError
from ssl_bench.records import iter_records

_CHILD = """
import os, sys
import torch
from ssl_bench import plugins
from ssl_bench.engine import ddp
from ssl_bench.testing import TestingPlugin
from ssl_bench.torchrun import main
plugins.register_plugin(TestingPlugin(), "testing", "ssl-bench-testing")
# the gather helpers first, on the process group the run then reuses
ddp.init_distributed("pytorch", "gloo")
rank = ddp.get_rank()
torch.save({"gathered": ddp.all_gather_concat(torch.full((2, 3), float(rank + 1))),
            "mean": ddp.all_reduce_mean(torch.tensor([rank * 4.0, 1.0]))},
           os.path.join(os.environ["GATHER_OUT"], f"{rank}.pt"))
main(sys.argv[1:])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_torchrun_two_ranks_train_one_model_and_rank0_writes_once(tmp_path) -> None:
    from safetensors.torch import load_file

    from ssl_bench.testing import DummyMethod, smoke_method

    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    results, state = tmp_path / "results", tmp_path / "state"
    env = dict(os.environ, GATHER_OUT=str(tmp_path),
               **{distributed.STATE_REPORT_ENV: str(state)})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", str(script),
           "--methods", "dummy", "--benchmarks", "tiny-phase", "--label-frac", "0.5",
           "--seeds", "0", "--profile", "smoke", "--device", "cpu", "--quiet",
           "--results", str(results)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [json.loads((state / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["steps"] for r in ranks] == [3, 3]  # the smoke profile's max_steps, as in 1 process
    assert ranks[0]["parameters"] == ranks[1]["parameters"]
    assert ranks[0]["buffers"] == ranks[1]["buffers"]

    checkpoints = list((results / "cache" / "checkpoints").rglob("*.safetensors"))
    sidecars = list((results / "cache" / "checkpoints").rglob("*.json"))
    assert len(checkpoints) == 1 and len(sidecars) == 1
    assert json.loads(sidecars[0].read_text())["steps"] == 3
    # the checkpoint holds the replicas' trained weights, which moved away from the seeded init
    method = smoke_method(DummyMethod)
    trained = method.build()
    trained.load_state_dict(load_file(str(checkpoints[0])))
    assert distributed.state_hashes(trained)["parameters"] == ranks[0]["parameters"]
    torch.manual_seed(0)
    assert distributed.state_hashes(method.build())["parameters"] != ranks[0]["parameters"]

    records, warnings = iter_records(results)
    assert not warnings and len(records) == 1
    assert records[0].status == "ok", records[0].error
    assert len(list((results / "records").rglob("*.json"))) == 1

    # all_gather_concat / all_reduce_mean across the 2 ranks
    expected = torch.cat([torch.full((2, 3), 1.0), torch.full((2, 3), 2.0)])  # rank order
    for rank in (0, 1):
        got = torch.load(tmp_path / f"{rank}.pt")
        assert torch.equal(got["gathered"], expected)
        assert torch.equal(got["mean"], torch.tensor([2.0, 1.0]))  # (0 + 4) / 2, (1 + 1) / 2


def test_helpers_are_the_identity_in_one_process() -> None:
    t = torch.randn(4, 3)
    assert distributed.all_gather_concat(t) is t
    assert distributed.all_reduce_mean(t) is t
    assert (distributed.get_rank(), distributed.get_world_size()) == (0, 1)
    assert distributed.is_main_process() and distributed.broadcast_object({"a": 1}) == {"a": 1}


def test_sync_batchnorm_on_gpu_only_and_checkpoint_keys_unchanged() -> None:
    def model() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())

    messages: list[str] = []
    kept = distributed.convert_sync_batchnorm(model(), "cpu", messages.append)
    assert isinstance(kept[1], nn.BatchNorm2d) and "needs a GPU" in messages[0]
    converted = distributed.convert_sync_batchnorm(model(), "cuda")
    assert isinstance(converted[1], nn.SyncBatchNorm)
    # a checkpoint written from the SyncBN model loads into the method's plain model
    plain = model()
    plain.load_state_dict(converted.state_dict())
    assert set(plain.state_dict()) == set(converted.state_dict())


def test_launcher_without_its_environment_names_the_fix(monkeypatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID",
                "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SSLBenchError, match="torchrun"):
        distributed.init_distributed("pytorch", "gloo")
    with pytest.raises(SSLBenchError, match="srun"):
        distributed.init_distributed("slurm", "gloo")
    assert not distributed.is_distributed()
