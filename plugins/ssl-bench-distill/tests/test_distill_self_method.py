"""DistillSelf end to end on the tiny pool: frozen teacher, stages, loss falls, checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssl_bench.errors import SSLBenchError
from ssl_bench.testing import first_batch, smoke_method, tiny_pool
from ssl_bench_distill.method import STAGE_STUDENT, DistillSelf
from ssl_bench_distill.teacher import load_teacher_backbone


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    method = smoke_method(DistillSelf)
    return first_batch(method.pretrain_dataset(tiny_pool("surgical", 32)), batch_size=8)


def _clone_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_teacher_backbone_frozen_and_bit_identical(batch) -> None:
    method = smoke_method(DistillSelf, teacher_fraction=0.5)
    model = method.build()
    method.pretrain_dataset(tiny_pool("surgical", 32))
    before = _clone_state(model.teacher)
    heads = {}
    losses = []
    params = method.parameters_to_optimize(model)
    assert not any(p is q for p in params for q in model.teacher.parameters())
    opt = torch.optim.AdamW(params, lr=1e-2)  # weight decay would move any stray parameter
    model.train()
    for step in range(4):
        out = method.training_step(model, batch, progress=step / 4)
        if int(model.stage) == STAGE_STUDENT and not heads:
            heads = _clone_state(model.teacher_head)
        opt.zero_grad(set_to_none=False)
        out["loss"].backward()
        opt.step()
        method.after_step(model, progress=(step + 1) / 4)
        losses.append(float(out["loss"].detach()))
        assert all(p.grad is None for p in model.teacher.parameters())
    assert int(model.stage) == STAGE_STUDENT
    assert model.teacher.training is False
    after = model.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics
    # the teacher head stops changing once the student stage begins
    assert all(torch.equal(heads[k], v) for k, v in model.teacher_head.state_dict().items())
    assert all(torch.isfinite(torch.tensor(losses)))
    # and matches the offline ImageNet teacher
    fresh = load_teacher_backbone()
    assert all(torch.equal(fresh.state_dict()[k], after[k]) for k in after)


@pytest.mark.parametrize("teacher_fraction", [0.0, 0.99])
def test_loss_falls_on_a_fixed_batch(batch, teacher_fraction: float) -> None:
    """Student stage (0.0) and teacher stage (0.99) on a fixed batch and a fixed queue: the
    queue is restored after every step, since on a fixed batch it would otherwise fill with
    copies of the batch's own keys (negatives identical to the positives)."""
    torch.manual_seed(0)
    method = smoke_method(DistillSelf, teacher_fraction=teacher_fraction, queue_size=64)
    model = method.build()
    method.pretrain_dataset(tiny_pool("surgical", 32))
    model.train()
    method.training_step(model, batch, progress=0.0)  # enter the stage, fill the queues
    queues = ("student_queue", "teacher_queue", "queue_ptr", "queue_filled")
    saved = {name: getattr(model, name).clone() for name in queues}
    opt = torch.optim.Adam(method.parameters_to_optimize(model), lr=1e-3)
    losses = []
    for _ in range(5):
        out = method.training_step(model, batch, progress=0.5)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        method.after_step(model, progress=0.5)
        for name, tensor in saved.items():
            getattr(model, name).copy_(tensor)
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < losses[0]


def test_double_moco_term_and_kd_active(batch) -> None:
    method = smoke_method(DistillSelf, teacher_fraction=0.0, double_moco_term=True,
                          distill_weight=3.0)
    model = method.build()
    method.pretrain_dataset(tiny_pool("surgical", 32))
    model.train()
    method.training_step(model, batch, progress=0.0)  # fills the aligned queues
    out = method.training_step(model, batch, progress=0.1)
    assert float(out["kd"]) > 0
    expected = 2 * float(out["moco"]) + 3.0 * float(out["kd"])
    assert float(out["loss"].detach()) == pytest.approx(expected, rel=1e-5)


def test_checkpoint_round_trip_and_encoder() -> None:
    method = smoke_method(DistillSelf)
    model = method.build()
    with torch.no_grad():
        model.student_queue.mul_(-1)
    rebuilt = method.build()
    rebuilt.load_state_dict(model.state_dict())
    encoder = method.encoder(rebuilt)
    assert encoder is rebuilt.student
    x = torch.rand(2, 3, 32, 32)
    encoder.eval()
    maps = encoder(x)
    assert [m.shape[1] for m in maps] == encoder.channels
    assert encoder.frame_features(x).shape == (2, encoder.embed_dim)


def test_teacher_weights_from_local_files(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    from ssl_bench.backbones import CNNEncoder

    torch.manual_seed(1)
    source = timm.create_model("efficientnet_lite0")  # a whole classifier, as users save it
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "t.pth")
    save_file(state, str(tmp_path / "t.safetensors"))
    for name in ("t.pth", "t.safetensors"):
        teacher = load_teacher_backbone("efficientnet_lite0", str(tmp_path / name))
        loaded = teacher.body.state_dict()
        assert "conv_head.weight" in loaded and "classifier.weight" not in loaded
        assert all(torch.equal(v, state[k]) for k, v in loaded.items())
        assert not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(SSLBenchError, match="not found"):
        load_teacher_backbone("efficientnet_lite0", str(tmp_path / "missing.pth"))
    with pytest.raises(SSLBenchError, match="lack"):
        load_teacher_backbone("resnet18", str(tmp_path / "t.pth"))
    # the features_only part of Lite0 stops before conv_head: not the pooled feature
    torch.save(CNNEncoder("efficientnet_lite0").body.state_dict(), tmp_path / "features.pth")
    with pytest.raises(SSLBenchError, match="lack .*conv_head"):
        load_teacher_backbone("efficientnet_lite0", str(tmp_path / "features.pth"))
    with pytest.raises(SSLBenchError, match="no offline ImageNet"):
        load_teacher_backbone("resnet18", None)


def test_moco_v2_checkpoint_teacher_keeps_the_query_encoder(tmp_path: Path) -> None:
    """A facebookresearch/moco-style checkpoint: the query encoder without fc is the teacher."""
    from ssl_bench.backbones import CNNEncoder

    torch.manual_seed(2)
    query = CNNEncoder("resnet18").body.state_dict()
    key = CNNEncoder("resnet18").body.state_dict()  # different random weights
    state = {f"module.encoder_q.{k}": v for k, v in query.items()}
    state.update({f"module.encoder_k.{k}": v for k, v in key.items()})
    state["module.encoder_q.fc.0.weight"] = torch.randn(512, 512)
    state["module.queue"] = torch.randn(128, 64)
    torch.save({"epoch": 800, "arch": "resnet18", "state_dict": state,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.03, "params": [0]}]}},
               tmp_path / "moco_v2.pth.tar")
    teacher = load_teacher_backbone("resnet18", str(tmp_path / "moco_v2.pth.tar"), "moco-v2")
    loaded = teacher.body.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in query.items()
               if not k.endswith("num_batches_tracked"))
    assert not torch.equal(loaded["conv1.weight"], key["conv1.weight"])
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    # through the method config
    method = smoke_method(DistillSelf, teacher_backbone="resnet18",
                          teacher_weights=str(tmp_path / "moco_v2.pth.tar"),
                          teacher_weights_format="moco-v2")
    assert torch.equal(method.build().teacher.body.state_dict()["conv1.weight"],
                       query["conv1.weight"])
    # a plain state dict is not a MoCo checkpoint; the format needs a file
    torch.save(query, tmp_path / "plain.pth")
    with pytest.raises(SSLBenchError, match="no MoCo query encoder"):
        load_teacher_backbone("resnet18", str(tmp_path / "plain.pth"), "moco-v2")
    with pytest.raises(SSLBenchError, match="needs teacher_weights"):
        load_teacher_backbone("resnet18", None, "moco-v2")
