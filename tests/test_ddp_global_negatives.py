"""The same method on 1 and N processes: with 2 CPU ranks (gloo) holding half of a global batch
each, simclr and reprec score against the negatives of the whole batch, and moco-v2 and
distill-self enqueue the keys of every rank, so the mean of the ranks' losses (what DDP's
gradient averaging optimises) equals the one-process loss on the concatenated batch and every
rank's queue equals the one-process queue. In one process nothing is gathered: the losses are
bit-identical to those of the plain (non-gathering) lightly loss.

How the comparison is made fair: every rank builds the same model (seed 0, as DDP's broadcast
from rank 0 would leave it) and runs it in eval mode, so BatchNorm uses its running statistics
and a sample's embedding does not depend on which other samples share its batch; the batches
are fixed tensors (seeded), rank r taking rows ``[r * B / 2, (r + 1) * B / 2)``. The ranks
compute the one-process reference (half of the methods each) before they join the process group.

Tolerances: the distributed and the one-process computations do the same float32 operations
on the same numbers, but over differently shaped tensors (a convolution over 4 images instead
of 8 may take another kernel path; a cross entropy sums the same terms in another order, the
global batch's columns being concatenated per rank), so they agree to float32 rounding, not
bit for bit. The backbone's embeddings agree to about 1e-6 relative; a loss is a mean of
log-sum-exps over at most 2B = 16 terms of logits divided by a temperature of 0.2-0.5 (a
factor 2-5 on the embeddings' error), so an error of about ``16 * 5 * 1.2e-7 = 1e-5`` relative
is the worst case we expect. We compare with ``rtol=1e-4, atol=1e-5`` (gradients: atol scaled
to the largest entry), ten times that bound, while a wrong gather (per-rank negatives, a
queue that misses the other rank's keys) changes the losses in the first or second digit and
the queues entirely. Tensors that every rank computes from the same gathered values (the
queues on rank 0 and rank 1, the DDP-averaged gradients) must be bit-identical across ranks.
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from ssl_bench.default_plugins.methods.byol import BYOL
from ssl_bench.default_plugins.methods.moco_v2 import MoCoV2
from ssl_bench.default_plugins.methods.simclr import SimCLR
from ssl_bench.engine import ddp
from ssl_bench.testing import smoke_method
from ssl_bench_reprec.method import RepRec

RTOL, ATOL = 1e-4, 1e-5

_CHILD = r'''
import datetime
import os
import sys

import torch

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

import torch.distributed as dist

from ssl_bench.default_plugins.methods.moco_v2 import MoCoV2
from ssl_bench.default_plugins.methods.simclr import SimCLR
from ssl_bench.engine import ddp
from ssl_bench.testing import smoke_method
from ssl_bench_distill.method import DistillSelf
from ssl_bench_reprec.method import RepRec

RANK, WORLD = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
OUT = os.environ["DDP_TEST_OUT"]
B, SIZE, DIM = 8, 32, 16  # global batch, image side, embedding width of the head checks


def fixed(seed, *shape):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def part(x):
    """This rank's rows of a global batch (the whole batch in one process)."""
    if not ddp.is_distributed():
        return x
    per = x.shape[0] // WORLD
    return x[RANK * per:(RANK + 1) * per]


def views(seed):
    v = fixed(seed, 2, B, 3, SIZE, SIZE)
    return part(v[0]), part(v[1])


def build(cls, **overrides):
    torch.manual_seed(0)  # every rank the same weights and initial queues
    method = smoke_method(cls, **overrides)
    return method, method.build().eval()


def averaged_grads(model):
    """The parameter gradients as DDP leaves them: the mean over ranks."""
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    if ddp.is_distributed():
        dist.all_reduce(grads)
        grads = grads / WORLD
    return grads


def head_grads(loss_fn, seed):
    """A contrastive loss on fixed embeddings and its gradient with respect to them."""
    z = (fixed(seed, 2, B, DIM) - 0.5).requires_grad_()
    loss = loss_fn(part(z[0]), part(z[1]))
    loss.backward()
    return loss.detach(), part(z.grad.transpose(0, 1)).transpose(0, 1)


def contrastive(out):
    method, model = build(SimCLR)
    loss = method.training_step(model, views(1), 0.0)["loss"]
    loss.backward()
    out["simclr_loss"], out["simclr_grads"] = loss.detach(), averaged_grads(model)
    out["simclr_head_loss"], out["simclr_head_grad"] = head_grads(method.criterion, 2)

    method, model = build(RepRec)
    out["reprec_contrastive"] = method.training_step(model, views(3), 0.0)["contrastive"]
    out["reprec_head_loss"], out["reprec_head_grad"] = head_grads(method.contrastive, 4)


def queues(out):
    method, model = build(MoCoV2)  # smoke: queue of 16 keys, so step 2 wraps around
    bank = model.criterion.memory_bank
    for step in (1, 2):
        out[f"moco_loss{step}"] = method.training_step(model, views(4 + step), 0.0)["loss"]
        out[f"moco_queue{step}"] = bank.bank.clone()
        out[f"moco_ptr{step}"] = bank.bank_ptr.clone()

    method, model = build(DistillSelf, refill_queues=False)  # smoke: teacher_fraction 0.34
    for step, progress in enumerate((0.0, 0.5, 0.6), start=1):  # teacher, student, student
        result = method.training_step(model, views(7 + step), progress)
        out[f"distill_loss{step}"] = result["loss"].detach()
        out[f"distill_stage{step}"] = model.stage.clone()
        for name in ("teacher_queue", "student_queue", "queue_ptr", "queue_filled"):
            out[f"distill_{name}{step}"] = getattr(model, name).clone()


# the one-process reference, half of it on each rank before the group forms
reference = {}
(contrastive if RANK == 0 else queues)(reference)
torch.save(reference, os.path.join(OUT, f"single{RANK}.pt"))
dist.init_process_group("gloo", init_method="env://", rank=RANK, world_size=WORLD,
                        timeout=datetime.timedelta(seconds=120))
assert ddp.get_world_size() == WORLD
results = {}
contrastive(results)
queues(results)
torch.save(results, os.path.join(OUT, f"rank{RANK}.pt"))
dist.barrier()
dist.destroy_process_group()
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_two_ranks(tmp_path: Path) -> tuple[dict, list[dict]]:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    base = dict(os.environ, WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(_free_port()), DDP_TEST_OUT=str(tmp_path),
                OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(script)], env=dict(base, RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in (0, 1)]
    try:
        logs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for r, p in enumerate(procs):
        assert p.returncode == 0, f"rank {r}:\n{logs[r][-3000:]}"
    single = {**torch.load(tmp_path / "single0.pt"), **torch.load(tmp_path / "single1.pt")}
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    return single, ranks


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL)


def _close_scaled(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Gradients: the absolute tolerance scaled to the largest entry (entries near 0 carry
    the rounding of the large ones)."""
    torch.testing.assert_close(actual, expected, rtol=RTOL,
                               atol=ATOL * max(1.0, float(expected.abs().max())))


def test_two_ranks_give_the_one_process_loss_and_queues(tmp_path: Path) -> None:
    single, ranks = _run_two_ranks(tmp_path)

    def mean_over_ranks(key: str) -> torch.Tensor:
        return (ranks[0][key] + ranks[1][key]) / 2

    # simclr: the loss over the global batch and DDP's averaged gradient of it
    _close(mean_over_ranks("simclr_loss"), single["simclr_loss"])
    assert torch.equal(ranks[0]["simclr_grads"], ranks[1]["simclr_grads"])
    _close_scaled(ranks[0]["simclr_grads"], single["simclr_grads"])
    # reprec: the contrastive term (the recovery term's masks are random per call)
    _close(mean_over_ranks("reprec_contrastive"), single["reprec_contrastive"])
    # the NT-Xent head on fixed embeddings (simclr's and reprec's loss objects): the gathered
    # gradient of rank r's loss w.r.t. its rows is N x the one-process gradient there, which
    # DDP's averaging over the N ranks divides by N
    for name in ("simclr", "reprec"):
        _close(mean_over_ranks(f"{name}_head_loss"), single[f"{name}_head_loss"])
        rows = torch.cat([ranks[r][f"{name}_head_grad"] for r in (0, 1)], dim=1) / 2
        _close_scaled(rows, single[f"{name}_head_grad"])

    # moco-v2: the queue after one enqueue and after a second one that wraps around
    for step in (1, 2):
        _close(mean_over_ranks(f"moco_loss{step}"), single[f"moco_loss{step}"])
        assert torch.equal(ranks[0][f"moco_queue{step}"], ranks[1][f"moco_queue{step}"])
        _close(ranks[0][f"moco_queue{step}"], single[f"moco_queue{step}"])
        assert torch.equal(ranks[0][f"moco_ptr{step}"], single[f"moco_ptr{step}"])
    assert int(single["moco_ptr1"]) == 8 and int(single["moco_ptr2"]) == 0

    # distill-self: one teacher step, then two student steps (the second one's KD term uses the
    # columns the first wrote); both queues stay equal to the one-process queues
    assert [int(single[f"distill_stage{s}"]) for s in (1, 2, 3)] == [1, 2, 2]
    for step in (1, 2, 3):
        _close(mean_over_ranks(f"distill_loss{step}"), single[f"distill_loss{step}"])
        for name in ("teacher_queue", "student_queue"):
            key = f"distill_{name}{step}"
            assert torch.equal(ranks[0][key], ranks[1][key])
            _close(ranks[0][key], single[key])
        for name in ("queue_ptr", "queue_filled"):
            key = f"distill_{name}{step}"
            assert int(ranks[0][key]) == int(ranks[1][key]) == int(single[key])
    assert int(single["distill_queue_filled3"]) == 16  # two student steps of the global batch


def test_one_process_losses_are_those_of_the_plain_loss() -> None:
    """No process group: the gathering losses compute exactly what lightly's default loss does
    (same value and gradient, bit for bit), and moco-v2's queue takes the local keys."""
    from lightly.loss import NTXentLoss

    assert not ddp.is_distributed()
    torch.manual_seed(0)
    z0, z1 = torch.randn(8, 16), torch.randn(8, 16)
    for method in (smoke_method(SimCLR), smoke_method(RepRec)):
        loss_fn = method.criterion if isinstance(method, SimCLR) else method.contrastive
        assert loss_fn.gather_distributed
        results = []
        for fn in (loss_fn, NTXentLoss(temperature=loss_fn.temperature)):
            a, b = z0.clone().requires_grad_(), z1.clone().requires_grad_()
            loss = fn(a, b)
            loss.backward()
            results.append((loss.detach(), a.grad, b.grad))
        for got, want in zip(results[0], results[1]):
            assert torch.equal(got, want)

    model = smoke_method(MoCoV2).build()
    assert model.criterion.gather_distributed
    size = tuple(model.criterion.memory_bank.size)
    plain = NTXentLoss(temperature=model.criterion.temperature, memory_bank_size=size)
    plain.memory_bank.bank.copy_(model.criterion.memory_bank.bank)
    q, k = torch.randn(8, size[1]), torch.randn(8, size[1])
    for _ in range(3):  # the third enqueue wraps around the queue of 16
        losses = [fn(q.clone().requires_grad_(), k) for fn in (model.criterion, plain)]
        assert torch.equal(losses[0], losses[1])
        assert torch.equal(model.criterion.memory_bank.bank, plain.memory_bank.bank)
        assert torch.equal(model.criterion.memory_bank.bank_ptr, plain.memory_bank.bank_ptr)


def test_byol_sync_bn_is_an_option_off_by_default() -> None:
    method = smoke_method(BYOL)
    assert not ddp.wants_sync_bn(method)
    synced = smoke_method(BYOL, sync_bn=True)
    assert ddp.wants_sync_bn(synced)
    # one process: prepare_model leaves the model alone even when asked
    model = synced.build().eval()
    assert ddp.prepare_model(synced, model, lambda _m: None) is model
    # on GPUs every BatchNorm of both networks becomes SyncBatchNorm (timm's fused norm +
    # activation layers keep their activation), with the same state-dict keys
    converted = ddp.convert_sync_batchnorm(copy.deepcopy(model), "cuda")
    norms = [m for m in converted.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms)
    assert converted.state_dict().keys() == model.state_dict().keys()
    # the same function: in eval mode (running statistics; no GPU needed) the outputs agree
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(converted.online(x), model.online(x))
