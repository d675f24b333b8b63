"""Evaluating a checkpoint file: specs, safe loading, the strict check, every task family."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path

import pytest
import timm
import torch

from ssl_bench.checkpoints import (
    DEFAULT_ARCH,
    CheckpointPlugin,
    CheckpointSpec,
    checkpoint_method,
    load_checkpoint_specs,
    parse_checkpoint_spec,
)
from ssl_bench.errors import SSLBenchError
from ssl_bench.testing import smoke_method

pytestmark = pytest.mark.usefixtures("torch_one_thread")

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: timm's small test ResNet (0.5 M parameters; pretrained_cfg mean = std = 0.5) keeps most tests
#: fast; the full round trip uses the real resnet18
SMALL = "test_resnet"
HALF = (0.5, 0.5, 0.5)


def _model(arch: str, seed: int = 0, **kwargs: object) -> torch.nn.Module:
    """A seeded timm model whose BatchNorm statistics are not the defaults, so that a lost
    buffer shows in the features."""
    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, **kwargs)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


def _encoder(spec: CheckpointSpec) -> torch.nn.Module:
    method = smoke_method(checkpoint_method(spec))
    return method.encoder(method.build()).eval()


def _reference_maps(model: torch.nn.Module, x: torch.Tensor, indices: list[int],
                    mean=IMAGENET[0], std=IMAGENET[1], **kwargs: object) -> list[torch.Tensor]:
    """The original model's own intermediate maps for the same normalised input."""
    xn = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        return model.forward_intermediates(xn, indices=indices, intermediates_only=True, **kwargs)


def test_resnet18_saved_with_module_prefix_round_trips(tmp_path: Path) -> None:
    model = _model("resnet18")
    path = _save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "r18.pth")
    spec = parse_checkpoint_spec(f"my-r18={path}:resnet18")
    cls = checkpoint_method(spec)

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    config = smoke_method(cls).config
    assert config.sha256 == digest and digest[:12] in cls.meta.version
    assert (config.mean, config.std) == IMAGENET  # timm's pretrained_cfg of resnet18
    assert config.out_indices == (1, 2, 3, 4)  # the stride-2 stem map is left out
    assert cls.meta.id == "my-r18" and cls.meta.backbone == "resnet18"
    assert cls.meta.pretrain_input == "none" and cls.meta.kind == "pretrain"
    assert set(cls.meta.provides) == {"frame-features", "spatial-features"}
    assert set(cls.meta.domains) == {"surgical", "ct"}

    encoder = _encoder(spec)
    assert encoder.strides == [4, 8, 16, 32] and encoder.channels == [64, 128, 256, 512]
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = encoder(x)
    for mine, ref in zip(got, _reference_maps(model, x, [1, 2, 3, 4]), strict=True):
        torch.testing.assert_close(mine, ref, rtol=0, atol=0)
    # a fresh random resnet18 gives other features: the comparison can fail
    other = _reference_maps(_model("resnet18", seed=1), x, [4])[0]
    assert not torch.allclose(got[-1], other)


def test_head_tensors_of_any_shape_are_dropped_and_a_headless_file_loads(tmp_path: Path) -> None:
    """The classifier (fc) of a fine-tuned 7-class model, a projection MLP saved under fc
    (fc.0, fc.2, as MoCo v2 does) or no head at all: the encoder is the same."""
    base = _model(SMALL, num_classes=7)
    body = {k: v for k, v in base.state_dict().items() if not k.startswith("fc.")}
    mlp = {"fc.0.weight": torch.zeros(96, 96), "fc.0.bias": torch.zeros(96),
           "fc.2.weight": torch.zeros(32, 96), "fc.2.bias": torch.zeros(32)}
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    outputs = []
    for name, state in [("seven", base.state_dict()), ("mlp", {**body, **mlp}),
                        ("headless", body)]:
        path = _save(state, tmp_path / f"{name}.pth")
        with torch.no_grad():
            outputs.append(_encoder(parse_checkpoint_spec(f"{name}={path}:{SMALL}"))(x)[-1])
    assert all(torch.equal(outputs[0], o) for o in outputs[1:])
    ref = _reference_maps(base, x, [4], mean=HALF, std=HALF)[0]
    torch.testing.assert_close(outputs[0], ref, rtol=0, atol=0)


def test_safetensors_with_a_wrapper_prefix(tmp_path: Path) -> None:
    model = _model(SMALL, seed=3)
    path = _save({f"backbone.{k}": v for k, v in model.state_dict().items()},
                 tmp_path / "small.safetensors")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = _encoder(parse_checkpoint_spec(f"st={path}:{SMALL}"))(x)
    ref = _reference_maps(model, x, [1, 2, 3, 4], mean=HALF, std=HALF)
    for mine, r in zip(got, ref, strict=True):
        torch.testing.assert_close(mine, r, rtol=0, atol=0)


def test_wrapped_state_dict_with_encoder_prefix_and_own_normalisation(tmp_path: Path) -> None:
    model = _model(SMALL, seed=4)
    state = {f"model.encoder.{k}": v for k, v in model.state_dict().items()}
    _save({"state_dict": state, "epoch": torch.tensor(3)}, tmp_path / "w.pt")
    (tmp_path / "list.yaml").write_text(
        f"- name: wrapped\n  path: w.pt\n  arch: {SMALL}\n"
        "  mean: [0.5, 0.5, 0.5]\n  std: [0.25, 0.25, 0.25]\n")
    (spec,) = load_checkpoint_specs([], tmp_path / "list.yaml")
    assert spec.path == tmp_path / "w.pt"  # relative to the YAML file
    encoder = _encoder(spec)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = encoder(x)[-1]
    ref = _reference_maps(model, x, [4], mean=(0.5,) * 3, std=(0.25,) * 3)[0]
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_vit_round_trips_through_timm_features_only(tmp_path: Path) -> None:
    arch = "vit_tiny_patch16_224"
    model = _model(arch, seed=5, depth=3, dynamic_img_size=True)
    path = _save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "vit.pth")
    (tmp_path / "vit.yaml").write_text(f"- name: vit\n  path: {path}\n  arch: {arch}\n"
                                       "  model_args: {depth: 3}\n")
    (spec,) = load_checkpoint_specs([], tmp_path / "vit.yaml")
    method = smoke_method(checkpoint_method(spec))
    assert method.config.model_args == {"depth": 3, "dynamic_img_size": True}
    assert (method.config.mean, method.config.std) == ((0.5,) * 3, (0.5,) * 3)
    encoder = method.encoder(method.build()).eval()
    assert encoder.strides == [16, 16, 16] and encoder.channels == [192, 192, 192]
    # any input size: the position embedding is interpolated (224 -> 32 px here)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = encoder(x)
    ref = _reference_maps(model, x, [0, 1, 2], mean=(0.5,) * 3, std=(0.5,) * 3, norm=False,
                          output_fmt="NCHW")
    for mine, r in zip(got, ref, strict=True):
        torch.testing.assert_close(mine, r)
    assert got[-1].shape == (2, 192, 2, 2)


def test_wrong_architecture_fails_with_one_line_naming_the_keys(tmp_path: Path) -> None:
    path = _save(_model("resnet18").state_dict(), tmp_path / "r18.pth")
    with pytest.raises(SSLBenchError) as exc:
        checkpoint_method(parse_checkpoint_spec(f"r34={path}:resnet34"))
    msg = str(exc.value)
    assert "\n" not in msg and "resnet34" in msg
    assert "missing (layer1.2.conv1.weight" in msg and "NAME=PATH:ARCH" in msg

    with pytest.raises(SSLBenchError) as exc:
        checkpoint_method(parse_checkpoint_spec(f"r50={path}"))  # default arch resnet50
    msg = str(exc.value)
    assert "\n" not in msg and DEFAULT_ARCH in msg
    assert "missing (layer1.0.conv3.weight" in msg
    assert "of another shape (layer1.0.conv1.weight (64, 64, 3, 3) vs (64, 64, 1, 1)" in msg


def test_unexpected_tensors_fail_unless_ignored(tmp_path: Path) -> None:
    """MoCo v2 keeps a key encoder and a queue beside the query encoder."""
    model = _model(SMALL)
    state = {f"module.encoder_q.{k}": v for k, v in model.state_dict().items()}
    state.update({f"module.encoder_k.{k}": v for k, v in model.state_dict().items()})
    state.update({"module.queue": torch.zeros(128, 16), "module.queue_ptr": torch.zeros(1)})
    path = _save({"state_dict": state}, tmp_path / "moco.pth.tar")
    with pytest.raises(SSLBenchError) as exc:
        checkpoint_method(parse_checkpoint_spec(f"moco={path}:{SMALL}"))
    msg = str(exc.value)
    assert "\n" not in msg and "missing" not in msg
    first = next(iter(model.state_dict()))
    assert f"{len(model.state_dict()) + 2} unexpected (encoder_k.{first}, " in msg
    assert "ignore_keys" in msg
    (tmp_path / "moco.yaml").write_text(
        f"- {{name: moco, path: {path}, arch: {SMALL}, ignore_keys: [encoder_k., queue]}}\n")
    (spec,) = load_checkpoint_specs([], tmp_path / "moco.yaml")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        got = _encoder(spec)(x)[-1]
    ref = _reference_maps(model, x, [4], mean=HALF, std=HALF)[0]
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_prefixes_are_stripped_only_while_the_key_is_not_a_model_name() -> None:
    from ssl_bench.backbones import strip_prefixes

    t = torch.zeros(1)
    saved = {"module.model.x": t, "module.backbone.encoder.y": t}
    assert set(strip_prefixes(saved)) == {"x", "y"}
    assert set(strip_prefixes(saved, target_keys={"model.x", "y"})) == {"model.x", "y"}
    with pytest.raises(SSLBenchError, match="both name tensor 'x'"):
        strip_prefixes({"module.x": t, "backbone.x": t})


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: it would create a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def test_code_executing_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    state = {k: v for k, v in _model(SMALL).state_dict().items()}
    path = tmp_path / "evil.pth"
    torch.save({**state, "payload": _Payload(marker)}, path)
    with pytest.raises(SSLBenchError) as exc:
        checkpoint_method(parse_checkpoint_spec(f"evil={path}:{SMALL}"))
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg and "cannot read weights" in msg
    assert not marker.exists()


def test_a_changed_file_is_another_version_and_a_stale_method_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    _save(_model(SMALL, seed=0).state_dict(), path)
    first = checkpoint_method(parse_checkpoint_spec(f"w={path}:{SMALL}"))
    again = checkpoint_method(parse_checkpoint_spec(f"w={path}:{SMALL}"))
    assert first.meta.version == again.meta.version
    _save(_model(SMALL, seed=1).state_dict(), path)
    second = checkpoint_method(parse_checkpoint_spec(f"w={path}:{SMALL}"))
    assert second.meta.version != first.meta.version
    assert smoke_method(second).config.sha256 != smoke_method(first).config.sha256
    stale = smoke_method(first)
    with pytest.raises(SSLBenchError, match="changed since it was registered"):
        stale.build()


def test_spec_parsing_and_its_errors(tmp_path: Path) -> None:
    spec = parse_checkpoint_spec("endovit=weights/endovit.pth:vit_base_patch16_224.mae")
    assert spec.arch == "vit_base_patch16_224.mae"
    assert spec.path == Path.cwd() / "weights" / "endovit.pth"
    assert parse_checkpoint_spec("plain=/data/moco_v2.pth").arch == DEFAULT_ARCH
    colon = tmp_path / "a:b.pth"  # an existing file whose name holds a colon is a path
    colon.write_bytes(b"")
    assert parse_checkpoint_spec(f"c={colon}").path == colon
    for bad, needle in [("no-equals.pth", "NAME=PATH[:ARCH]"),
                        ("Bad_Name=/x.pth", "not a valid method id"),
                        ("x=/x.pth:resnet_fifty", "unknown timm architecture 'resnet_fifty'")]:
        with pytest.raises(SSLBenchError, match=needle.replace("[", r"\[").replace("]", r"\]")):
            parse_checkpoint_spec(bad)
    with pytest.raises(SSLBenchError, match="did you mean resnet50"):
        parse_checkpoint_spec("x=/x.pth:resnet500")
    with pytest.raises(SSLBenchError, match="given twice"):
        load_checkpoint_specs(["a=/x.pth", "a=/y.pth"])
    (tmp_path / "bad.yaml").write_text("- {name: a, path: x.pth, weights: y}\n")
    with pytest.raises(SSLBenchError, match="unknown key 'weights'; valid keys: name, path"):
        load_checkpoint_specs([], tmp_path / "bad.yaml")
    (tmp_path / "map.yaml").write_text("name: a\npath: x.pth\n")
    with pytest.raises(SSLBenchError, match="must be a YAML list of mappings"):
        load_checkpoint_specs([], tmp_path / "map.yaml")
    with pytest.raises(SSLBenchError, match="checkpoint file not found"):
        checkpoint_method(parse_checkpoint_spec(f"gone={tmp_path / 'gone.pth'}:resnet18"))


def test_plugin_registers_the_methods_and_travels_to_workers(tmp_path: Path) -> None:
    import pickle

    from ssl_bench import plugins
    from ssl_bench.checkpoints import register_checkpoints

    path = _save(_model(SMALL).state_dict(), tmp_path / "small.pth")
    spec = parse_checkpoint_spec(f"ckpt-small={path}:{SMALL}")
    plugin = CheckpointPlugin([spec])
    again = pickle.loads(pickle.dumps(plugin))  # what --jobs workers receive
    assert again.methods()[0].meta == plugin.methods()[0].meta
    plugins.reset()
    try:
        assert register_checkpoints([f"ckpt-small={path}:{SMALL}"]) == ["ckpt-small"]
        cls = plugins.get_registries().methods.get("ckpt-small")
        assert cls.meta.version.endswith(cls.make_config("smoke").sha256[:12])
        with pytest.raises(SSLBenchError, match="'random-init' is already a method id"):
            register_checkpoints([f"random-init={path}:{SMALL}"])
    finally:
        plugins.reset()


@pytest.mark.parametrize("family", ["phase-recognition", "semantic-segmentation",
                                    "organ-segmentation"])
def test_checkpoint_method_runs_every_task_family(family: str, tmp_path: Path) -> None:
    from ssl_bench.default_plugins.tasks.organ import OrganSegmentation
    from ssl_bench.default_plugins.tasks.phase import PhaseRecognition
    from ssl_bench.default_plugins.tasks.segmentation import SemanticSegmentation
    from ssl_bench.testing import TinySegDataset, TinyVideoDataset, TinyVolumeDataset, tiny_cell

    task_cls, dataset = {
        "phase-recognition": (PhaseRecognition, TinyVideoDataset(Path("."))),
        "semantic-segmentation": (SemanticSegmentation, TinySegDataset(Path("."))),
        "organ-segmentation": (OrganSegmentation, TinyVolumeDataset(Path("."))),
    }[family]
    path = _save(_model(SMALL).state_dict(), tmp_path / "small.pth")
    cls = checkpoint_method(parse_checkpoint_spec(f"small={path}:{SMALL}"))
    assert task_cls.applies_to(cls.meta, dataset.meta)
    cell = tiny_cell(tmp_path, dataset, method_cls=cls)
    method = cell.method

    def make_encoder() -> torch.nn.Module:
        torch.manual_seed(0)
        return method.encoder(method.build())

    cell = dataclasses.replace(cell, make_encoder=make_encoder,
                               checkpoint_id=f"init-{method.config.sha256[:16]}")
    result = task_cls(task_cls.make_config("smoke")).evaluate(cell)
    main = result.metrics[task_cls.meta.main_score]
    assert math.isfinite(main) and result.main_parts is not None
    assert abs(result.main_parts.value() - main) < 1e-6


def test_a_smoke_run_evaluates_a_checkpoint_file_on_all_four_task_families(
        testing_plugin, tmp_path: Path) -> None:
    from ssl_bench.records import iter_records
    from ssl_bench.testing import cli_exit_code

    path = _save({f"module.{k}": v for k, v in _model(SMALL).state_dict().items()},
                 tmp_path / "weights.pth")
    results = tmp_path / "results"
    code = cli_exit_code(["run", "--checkpoint", f"ckpt={path}:{SMALL}", "--methods",
                          "dummy-init", "--benchmarks", "tiny-phase,tiny-seg,tiny-organ,tiny-tools",
                          "--profile", "smoke", "--seeds", "0", "--label-frac", "0.5",
                          "--results", str(results), "--quiet"])
    assert code == 0
    records = [r for r in iter_records(results)[0] if r.method.id == "ckpt"]
    assert {r.task.id for r in records} == {"phase-recognition", "semantic-segmentation",
                                            "organ-segmentation", "tool-presence"}
    digest = records[0].method_config["sha256"]
    assert all(r.status == "ok" and r.method_config["sha256"] == digest for r in records)
    assert all(r.method.version.endswith(digest[:12]) for r in records)
