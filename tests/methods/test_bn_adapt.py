"""The batch-norm adaptation controls: a real pretraining run (mmengine's Runner, the method's
optimiser with weight decay) changes the BN running statistics and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssl_bench.default_plugins.methods.bn_adapt import BNAdapt, BNAdaptRandom
from ssl_bench.default_plugins.methods.simclr import SimCLR
from ssl_bench.engine.pretrain import run_pretraining
from ssl_bench.testing import smoke_method, tiny_pool

pytestmark = pytest.mark.usefixtures("torch_one_thread")

BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _changed_keys(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    assert before.keys() == after.keys()
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.mark.parametrize("cls", [BNAdapt, BNAdaptRandom])
def test_bn_adapt_changes_only_bn_buffers(cls: type[BNAdapt], tmp_path: Path) -> None:
    method = smoke_method(cls, weight_decay=0.1)
    torch.manual_seed(3)
    before = {k: v.clone() for k, v in method.build().state_dict().items()}
    net, steps = run_pretraining(method, tiny_pool("surgical"), tmp_path / "work", 3,
                                 lambda _m: None)
    after = net.state_dict()
    changed = _changed_keys(before, after)
    assert steps == 3
    assert changed, "the BN statistics did not move"
    assert all(k.endswith(BN_BUFFERS) for k in changed), sorted(changed)[:5]
    # every BN layer saw the pool: all running means moved
    means = [k for k in before if k.endswith("running_mean")]
    assert set(means) <= changed
    # both views of every step went through the network in train mode
    counts = {int(after[k]) for k in after if k.endswith("num_batches_tracked")}
    assert counts == {int(before[next(k for k in before if k.endswith("num_batches_tracked"))])
                      + 2 * steps}


def test_the_two_rows_differ_only_in_the_starting_weights() -> None:
    imagenet, random = smoke_method(BNAdapt), smoke_method(BNAdaptRandom)
    assert imagenet.config.imagenet_init and not random.config.imagenet_init
    assert imagenet.config.model_dump(exclude={"imagenet_init"}) == \
        random.config.model_dump(exclude={"imagenet_init"})


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_bn_adapt_sees_the_simclr_rows_pipeline_and_budget(profile: str) -> None:
    bn, simclr = smoke_method(BNAdapt, profile), smoke_method(SimCLR, profile)
    for key in ("image_size", "batch_size", "max_steps", "epochs", "min_crop_scale",
                "jitter_strength", "blur_p", "backbone", "imagenet_init"):
        assert getattr(bn.config, key) == getattr(simclr.config, key), key
    pool = tiny_pool("surgical")
    torch.manual_seed(0)
    ours = bn.pretrain_dataset(pool)[0]
    torch.manual_seed(0)
    theirs = simclr.pretrain_dataset(pool)[0]
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
