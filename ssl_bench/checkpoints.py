"""Evaluate any checkpoint: a local weights file of any timm architecture as a method row.

``--checkpoint NAME=PATH[:ARCH]`` (or a YAML list of mappings, see :class:`CheckpointSpec`)
turns a released model file (EndoViT, SurgeNet, LemonFM, a MoCo v2 ResNet-50, ...) into a
:class:`~ssl_bench.api.Method` with no pretraining stage: its encoder is
``timm.create_model(ARCH, features_only=True)`` carrying the file's tensors.

Loading (:func:`load_encoder`):

* ``.pth``/``.pt``/``.bin`` are read with ``torch.load(weights_only=True)`` and ``.safetensors``
  with safetensors, so a pickle that would run code is refused
  (:func:`ssl_bench.backbones.read_weights`); wrappers (``{"state_dict": ...}``,
  ``{"model": ...}``) and key prefixes (``module.``, ``model.``, ``backbone.``, ``encoder.``,
  ``encoder_q.``) are removed, a prefix only while the key is not already a name of the model.
* The file is compared with the *full* timm model (classifier included). Tensors of the full
  model that the ``features_only`` encoder does not hold (classifier, final norm, EfficientNet's
  ``conv_head``, ViT blocks after the last output) are *head tensors*: accepted and dropped. So is
  anything under the architecture's classifier module (timm's ``pretrained_cfg["classifier"]``:
  ``fc`` of a ResNet, ``head`` of a ViT), whatever its shape or structure (a fine-tuned
  classifier with other classes, a projection MLP saved as ``fc.0``/``fc.2``).
* Strict check: every tensor the encoder holds must be in the file with its shape (BatchNorm's
  ``num_batches_tracked`` may be absent); any other tensor of the file is unexpected unless
  ``ignore_keys`` names it. Missing, unexpected and wrong-shape tensors are reported in one line
  (counts and the first few names).

The encoder normalises its inputs itself: ``mean``/``std`` options, by default timm's
``pretrained_cfg`` statistics of the architecture (static metadata; nothing is downloaded).

The sha256 of the file's bytes is part of the method's config (so it lands in every record and
in the config hash) and of ``meta.version`` (a changed file is a different version); the loaded
bytes are checked against it each time the encoder is built.

Limits (timm 1.0.31): ViTs work through timm's ``features_only`` getter (``forward_intermediates``):
by default the patch tokens of the last three blocks, as maps at stride = patch size, before the
final norm. Their ``dynamic_img_size`` switch is turned on, so the position embedding is
interpolated to any input size at run time; the checkpoint's position embedding must still match
the architecture's own (set ``img_size`` in ``model_args`` for a ViT trained at another size);
timm's format converters for foreign checkpoints (official JAX/OpenAI layouts) are not applied.
CNN levels at stride 2 are left out by default (as :class:`ssl_bench.backbones.CNNEncoder` does);
``out_indices`` chooses other levels.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping

import timm
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from ssl_bench import hookimpl
from ssl_bench.api import ID_PATTERN, Encoder, Method, MethodConfig, MethodMeta
from ssl_bench.backbones import Normalise, feature_info, read_weights, strip_prefixes
from ssl_bench.errors import SSLBenchError
from ssl_bench.profiles import IMAGE_SIZE

#: architecture of ``NAME=PATH`` without ``:ARCH`` (MoCo v2 and torchvision checkpoints)
DEFAULT_ARCH = "resnet50"
#: bumped when loading changes the weights an encoder ends up with
LOADER_VERSION = "1"
#: by default, feature levels finer than this stride (CNN stems at stride 2) are left out
MIN_DEFAULT_STRIDE = 4
Triple = tuple[float, float, float]


class CheckpointSpec(BaseModel):
    """One checkpoint row: ``NAME=PATH[:ARCH]`` on the command line, or a mapping of a YAML list
    with these keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=ID_PATTERN)
    path: Path
    arch: str = DEFAULT_ARCH
    #: input statistics (images in [0, 1]); None: timm's pretrained_cfg of ``arch``
    mean: Triple | None = None
    std: Triple | None = None
    #: timm ``out_indices`` of the feature levels; None: timm's default minus stride-2 levels
    out_indices: tuple[int, ...] | None = None
    #: prefixes of file tensors to drop before the strict check (e.g. MoCo's ``encoder_k.``,
    #: ``queue``; MAE's ``decoder``, ``mask_token``), matched with and without wrapper prefixes
    ignore_keys: tuple[str, ...] = ()
    #: extra keyword arguments of ``timm.create_model`` (e.g. ``{"img_size": 448}``)
    model_args: dict[str, Any] = Field(default_factory=dict)
    #: shown in ``ssl-bench list``: where the weights come from
    paper: str = ""
    url: str | None = None
    license: str = "unknown (user checkpoint)"


def _spec(values: dict[str, Any], where: str) -> CheckpointSpec:
    try:
        return CheckpointSpec(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(map(str, first["loc"])) or "entry"
        valid = ", ".join(CheckpointSpec.model_fields)
        if first["type"] == "extra_forbidden":
            raise SSLBenchError(f"{where}: unknown key {loc!r}; valid keys: {valid}") from None
        if loc == "name" and first["type"] == "string_pattern_mismatch":
            raise SSLBenchError(f"{where}: name {values.get('name')!r} is not a valid method id; "
                                "use lowercase letters, digits, '.' and '-'") from None
        raise SSLBenchError(f"{where}: {loc}: {first['msg']} (valid keys: {valid})") from None


def _check_arch(arch: str, where: str) -> None:
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise SSLBenchError(f"{where}: unknown timm architecture {arch!r}{hint}; give a name "
                            "from timm.list_models()")


def parse_checkpoint_spec(value: str) -> CheckpointSpec:
    """``NAME=PATH[:ARCH]`` -> a spec (relative paths are taken from the working directory).

    The part after the last ``:`` is the architecture unless the whole of ``PATH[:ARCH]`` names
    an existing file."""
    where = f"--checkpoint {value!r}"
    name, sep, rest = value.partition("=")
    if not sep or not name or not rest:
        raise SSLBenchError(f"{where}: write NAME=PATH[:ARCH], e.g. "
                            f"moco-r50=weights/moco_v2.pth:{DEFAULT_ARCH}")
    values: dict[str, Any] = {"name": name.strip(), "path": rest}
    path, colon, arch = rest.rpartition(":")
    if colon and path and not Path(rest).expanduser().is_file():
        values.update(path=path, arch=arch)
    values["path"] = Path(values["path"]).expanduser().absolute()
    spec = _spec(values, where)
    _check_arch(spec.arch, where)
    return spec


def specs_from_entries(entries: Any, base: Path, source: str) -> list[CheckpointSpec]:
    """The specs of a list of mappings (keys of :class:`CheckpointSpec`), from a checkpoint list
    file or a run file's ``checkpoints``; relative paths are taken from ``base``; ``source``
    names where the list comes from in error lines."""
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise SSLBenchError(f"{source} must be a YAML list of mappings with keys name, path "
                            "and optionally arch, mean, std, ...")
    specs = []
    for i, entry in enumerate(entries):
        where = f"{source}, entry {i + 1}"
        if "path" in entry:
            entry = {**entry, "path": base / Path(str(entry["path"])).expanduser()}
        spec = _spec(dict(entry), where)
        _check_arch(spec.arch, where)
        specs.append(spec.model_copy(update={"path": spec.path.absolute()}))
    return specs


def load_checkpoint_specs(values: Iterable[str], yaml_path: Path | None = None
                          ) -> list[CheckpointSpec]:
    """The specs of every ``--checkpoint NAME=PATH[:ARCH]`` value, then those of a YAML file
    holding a list of mappings (:func:`specs_from_entries`; relative paths are taken from the
    YAML file's folder). Names must be unique."""
    import yaml

    specs = [parse_checkpoint_spec(v) for v in values]
    if yaml_path is not None:
        yaml_path = Path(yaml_path)
        try:
            entries = yaml.safe_load(yaml_path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SSLBenchError(f"cannot read checkpoint list {yaml_path}: {first}") from None
        specs += specs_from_entries(entries, yaml_path.parent, f"checkpoint list {yaml_path}")
    _check_unique(specs)
    return specs


def _check_unique(specs: list[CheckpointSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise SSLBenchError(f"checkpoint name {spec.name!r} is given twice; give each "
                                "checkpoint its own NAME")
        seen.add(spec.name)


# --------------------------------------------------------------------------------------
# loading a file into a timm features_only model


def _weights(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The file's tensors and the sha256 of the very bytes they come from (read again each
    time the encoder is built, so the hash always describes the weights used)."""
    if not path.is_file():
        raise SSLBenchError(f"checkpoint file not found: {path}; give an existing "
                            ".pth/.pt/.safetensors file")
    return read_weights(path, "the checkpoint path")


def _create(arch: str, **kwargs: Any) -> nn.Module:
    try:
        return timm.create_model(arch, pretrained=False, **kwargs)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SSLBenchError(f"timm cannot build {arch} with {kwargs}: {first}; check ARCH, "
                            "out_indices and model_args") from None


def _model_args(arch: str, model_args: dict[str, Any]) -> dict[str, Any]:
    """``model_args`` plus ``dynamic_img_size=True`` where the architecture has that switch
    (ViTs), so it takes any input size."""
    with torch.device("meta"):
        probe = _create(arch, **model_args)
    if getattr(probe, "dynamic_img_size", None) is False and "dynamic_img_size" not in model_args:
        return {**model_args, "dynamic_img_size": True}
    return dict(model_args)


def default_out_indices(arch: str, model_args: dict[str, Any]) -> tuple[int, ...]:
    """timm's default feature levels of ``arch`` without those finer than stride 4."""
    with torch.device("meta"):
        info = feature_info(_create(arch, features_only=True, **model_args))
    chosen = tuple(i for i, r in zip(info.out_indices, info.reduction())
                   if r >= MIN_DEFAULT_STRIDE)
    return chosen or tuple(info.out_indices)


def _full_name(feature_key: str, full_keys: dict[str, Any], arch: str) -> str:
    """The full model's name of a ``features_only`` tensor. timm's feature wrappers keep the
    whole model under ``model.`` (FeatureGetterNet) or ``body.`` (FeatureHookNet), or flatten
    its first-level sequentials, ``stages.0`` -> ``stages_0`` (FeatureListNet); the models with
    their own features class keep the names."""
    candidates = [feature_key]
    candidates += [feature_key[len(p):] for p in ("model.", "body.") if feature_key.startswith(p)]
    first, dot, rest = feature_key.partition(".")
    candidates += [f"{first[:i]}.{first[i + 1:]}{dot}{rest}" for i, c in enumerate(first)
                   if c == "_"]
    for name in candidates:
        if name in full_keys:
            return name
    raise SSLBenchError(f"cannot match tensor {feature_key!r} of timm {arch} features_only to "
                        "the full model; this architecture cannot be loaded from a checkpoint")


@dataclass(frozen=True)
class TargetLayout:
    """What a file must hold for one architecture: the full model's tensor shapes, the full name
    of each tensor of the ``features_only`` encoder and the classifier modules."""

    arch: str
    full_shapes: dict[str, tuple[int, ...]]
    feature_names: dict[str, str]  # features_only key -> full model key
    head_modules: tuple[str, ...]
    out_indices: tuple[int, ...]
    mean: Triple
    std: Triple

    def is_head(self, key: str) -> bool:
        """A tensor under the classifier module, or of the full model but not of the encoder."""
        if any(key == h or key.startswith(h + ".") for h in self.head_modules):
            return True
        return key in self.full_shapes and key not in self._used

    def required(self) -> list[str]:
        """Full-model names of the tensors the file must hold (BatchNorm step counters may be
        absent)."""
        return [k for k in self.feature_names.values()
                if not self.is_head(k) and not k.endswith("num_batches_tracked")]

    @functools.cached_property
    def _used(self) -> frozenset[str]:
        return frozenset(self.feature_names.values())


def target_layout(arch: str, model_args: dict[str, Any], out_indices: tuple[int, ...]
                  ) -> TargetLayout:
    """Built on the meta device: no memory, no weights."""
    with torch.device("meta"):
        full = _create(arch, **model_args)
        body = _create(arch, features_only=True, out_indices=out_indices, **model_args)
    full_shapes = {k: tuple(v.shape) for k, v in full.state_dict().items()}
    pretrained_cfg = full.pretrained_cfg
    cfg: dict[str, Any] = pretrained_cfg if isinstance(pretrained_cfg, dict) else {}
    heads = cfg.get("classifier") or ()
    mean = tuple(float(m) for m in cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(float(s) for s in cfg.get("std", (0.229, 0.224, 0.225)))
    return TargetLayout(
        arch=arch, full_shapes=full_shapes,
        feature_names={k: _full_name(k, full_shapes, arch) for k in body.state_dict()},
        head_modules=(heads,) if isinstance(heads, str) else tuple(heads),
        out_indices=tuple(out_indices), mean=mean, std=std,  # type: ignore[arg-type]
    )


def _first(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def select_weights(saved: dict[str, torch.Tensor], layout: TargetLayout,
                   ignore_keys: tuple[str, ...] = (), source: str = "checkpoint"
                   ) -> dict[str, torch.Tensor]:
    """The file's tensors for each ``features_only`` key, after the strict check (one line
    naming missing, unexpected and wrong-shape tensors)."""
    def ignored(key: str) -> bool:
        return any(key.startswith(p) for p in ignore_keys)

    kept = {k: v for k, v in saved.items() if not ignored(k)}
    state = {k: v for k, v in strip_prefixes(kept, layout.full_shapes).items()
             if not ignored(k) and not layout.is_head(k)}
    missing = [full for full in layout.required() if full not in state]
    unexpected = [k for k in state if k not in layout.full_shapes]
    wrong = [f"{k} {tuple(state[k].shape)} vs {layout.full_shapes[k]}" for k in state
             if k in layout.full_shapes and tuple(state[k].shape) != layout.full_shapes[k]]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_first(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_first(unexpected)})")
        if wrong:
            parts.append(f"{len(wrong)} of another shape ({_first(wrong, 2)})")
        raise SSLBenchError(
            f"{source} does not fit timm {layout.arch}: {'; '.join(parts)}; give the file's "
            "architecture as NAME=PATH:ARCH, or drop extra tensors with ignore_keys in a "
            "--checkpoint YAML list")
    return {fk: state[full] for fk, full in layout.feature_names.items() if full in state}


class CheckpointEncoder(Encoder):
    """A timm ``features_only`` model with its own input normalisation; NHWC maps (Swin) are
    returned as NCHW."""

    def __init__(self, body: nn.Module, mean: Triple, std: Triple) -> None:
        info = feature_info(body)
        super().__init__(info.channels(), info.reduction())
        self.normalise = Normalise(mean, std)
        self.body = body
        self.nhwc = getattr(body, "output_fmt", "NCHW") == "NHWC"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = list(self.body(self.normalise(x)))
        return [m.permute(0, 3, 1, 2) for m in maps] if self.nhwc else maps


class CheckpointConfig(MethodConfig):
    """What decides the encoder's weights and inputs (every field enters the config hash)."""

    sha256: str
    arch: str
    mean: Triple
    std: Triple
    out_indices: tuple[int, ...]
    ignore_keys: tuple[str, ...] = ()
    model_args: dict[str, Any] = Field(default_factory=dict)


def load_encoder(path: Path, config: CheckpointConfig) -> CheckpointEncoder:
    """The encoder of a checkpoint file, after checking the file still has ``config.sha256``."""
    saved, digest = _weights(path)
    if digest != config.sha256:
        raise SSLBenchError(f"checkpoint {path} changed since it was registered (sha256 "
                            f"{digest[:12]}, expected {config.sha256[:12]}); run again")
    layout = target_layout(config.arch, config.model_args, config.out_indices)
    weights = select_weights(saved, layout, config.ignore_keys, f"checkpoint {path}")
    body = _create(config.arch, features_only=True, out_indices=config.out_indices,
                   **config.model_args)
    result = body.load_state_dict(weights, strict=False)
    required = set(layout.required())
    left = [k for k in result.missing_keys if layout.feature_names[k] in required]
    if left or result.unexpected_keys:  # select_weights covers every key: a timm change
        raise SSLBenchError(f"checkpoint {path}: timm {config.arch} left {_first(left)} "
                            f"unloaded; report this with the timm version {timm.__version__}")
    return CheckpointEncoder(body, config.mean, config.std)


class CheckpointMethod(Method):
    """A checkpoint file as a method with no pretraining stage; :func:`checkpoint_method`
    makes one subclass per file."""

    Config = CheckpointConfig
    weights_path: ClassVar[Path]

    def build(self) -> nn.Module:
        assert isinstance(self.config, CheckpointConfig)
        return load_encoder(self.weights_path, self.config)

    def encoder(self, model: nn.Module) -> Encoder:
        assert isinstance(model, CheckpointEncoder)
        return model


def checkpoint_method(spec: CheckpointSpec) -> type[CheckpointMethod]:
    """A Method class for one checkpoint file; reads the file and checks that it fits the
    architecture now (one-line error), so a bad file fails before any cell runs."""
    _check_arch(spec.arch, f"checkpoint {spec.name!r}")
    path = spec.path.expanduser().absolute()
    saved, digest = _weights(path)
    model_args = _model_args(spec.arch, spec.model_args)
    out_indices = spec.out_indices or default_out_indices(spec.arch, model_args)
    layout = target_layout(spec.arch, model_args, out_indices)
    select_weights(saved, layout, spec.ignore_keys, f"checkpoint {spec.name!r} ({path})")
    values = {
        "sha256": digest, "arch": spec.arch, "mean": spec.mean or layout.mean,
        "std": spec.std or layout.std, "out_indices": layout.out_indices,
        "ignore_keys": spec.ignore_keys, "model_args": model_args,
    }
    meta = MethodMeta(
        id=spec.name,
        version=f"{LOADER_VERSION}+{digest[:12]}",
        kind="pretrain",
        name=spec.name,
        paper=spec.paper or f"user checkpoint {path.name}",
        url=spec.url,
        license=spec.license,
        description=(f"weights file {path.name} (sha256 {digest[:12]}) in timm {spec.arch} "
                     "features_only; no pretraining"),
        pretrain_input="none",
        domains=("surgical", "ct"),
        provides=frozenset({"frame-features", "spatial-features"}),
        backbone=spec.arch,
    )
    profiles = {p: {"image_size": size, **values} for p, size in IMAGE_SIZE.items()}
    cls_name = "Checkpoint_" + "".join(c if c.isalnum() else "_" for c in spec.name)
    return type(cls_name, (CheckpointMethod,),
                {"meta": meta, "profiles": profiles, "weights_path": path,
                 "__module__": __name__})


class CheckpointPlugin:
    """Registers checkpoint methods like any plugin
    (``register_plugin(CheckpointPlugin(specs), name="checkpoints")``). It holds the specs, not
    the generated classes, so it can be pickled to worker processes, which build the classes
    again (the file is read and checked there too)."""

    def __init__(self, specs: Iterable[CheckpointSpec]) -> None:
        self.specs = list(specs)
        self._methods: list[type[CheckpointMethod]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"specs": self.specs, "_methods": None}

    def methods(self) -> list[type[CheckpointMethod]]:
        if self._methods is None:
            self._methods = [checkpoint_method(s) for s in self.specs]
        return self._methods

    @hookimpl
    def register_methods(self, register: Callable[[Any], None]) -> None:
        for method in self.methods():
            register(method)


def register_checkpoints(values: Iterable[str | Mapping[str, Any]],
                         base: Path | None = None) -> list[str]:
    """``ssl-bench run --checkpoint``: each value is ``NAME=PATH[:ARCH]``, a YAML file listing
    checkpoints, or (from a run file's ``checkpoints`` list) a mapping of
    :class:`CheckpointSpec` keys whose relative path is taken from ``base``. Registers one
    method per file (checked now: a bad file fails before any cell) and returns their names;
    a name that is already a method id is refused."""
    from ssl_bench import plugins

    inline: list[str] = []
    files: list[str] = []
    entries: list[Mapping[str, Any]] = []
    for value in values:
        if isinstance(value, Mapping):
            entries.append(value)
        elif "=" not in value and value.endswith((".yaml", ".yml")):
            files.append(value)
        else:
            inline.append(value)
    specs = load_checkpoint_specs(inline, None)
    for path in files:
        specs += load_checkpoint_specs([], Path(path))
    if entries:
        specs += specs_from_entries(entries, base or Path.cwd(), "the run file's checkpoints")
    _check_unique(specs)
    known = plugins.get_registries().methods
    for spec in specs:
        if spec.name in known or spec.name in known.conflicts:
            raise SSLBenchError(f"--checkpoint {spec.name}=...: {spec.name!r} is already a "
                                "method id; choose another NAME")
    plugin = CheckpointPlugin(specs)
    plugin.methods()  # read and check every file now
    plugins.register_plugin(plugin, "checkpoints", "--checkpoint")
    return [spec.name for spec in specs]


__all__ = ["CheckpointSpec", "parse_checkpoint_spec", "load_checkpoint_specs",
           "specs_from_entries", "checkpoint_method", "CheckpointMethod", "CheckpointConfig",
           "CheckpointEncoder", "CheckpointPlugin", "register_checkpoints", "load_encoder",
           "select_weights", "target_layout",
           "TargetLayout", "default_out_indices", "DEFAULT_ARCH"]
