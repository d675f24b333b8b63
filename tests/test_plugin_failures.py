"""Plugin failures, as a third-party author would meet them: each is caught and explained in
one line naming the plugin, so that a record is what it says it is."""

from __future__ import annotations

import json
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch import nn

from ssl_bench import hookimpl, plugins
from ssl_bench.api import Encoder
from ssl_bench.engine.pretrain import build_optimizer
from ssl_bench.engine.probe import EncoderContractError, check_encoder
from ssl_bench.errors import SSLBenchError
from ssl_bench.records import iter_records
from ssl_bench.testing import DummyMethod, TestingPlugin, TinyConvEncoder, cli_exit_code

SMOKE = ["--profile", "smoke", "--seeds", "0", "--label-frac", "0.5", "--quiet"]


@pytest.fixture
def fresh_plugins() -> Any:
    plugins.reset()
    yield
    plugins.reset()


def _plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, code: str,
                   with_testing: bool = True) -> None:
    """Install ``code`` as module ``name`` behind a fake entry point of distribution
    ``dist-<name>``, next to the core's entry points (and the test doubles)."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(code))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    real = plugins.entry_points

    class FakeDist:
        def __init__(self, dist: str) -> None:
            self.name, self.version = dist, "0.0.1"

    def fake_entry_points(group: str) -> list[EntryPoint]:
        ep = EntryPoint(name=name, value=name, group=group)
        object.__setattr__(ep, "dist", FakeDist(f"dist-{name}"))
        return list(real(group=group)) + [ep]

    monkeypatch.setattr(plugins, "entry_points", fake_entry_points)
    monkeypatch.setenv("SSL_BENCH_LOAD_PLUGINS",
                       f"builtin-datasets,builtin-tasks,builtin-methods,builtin-benchmarks,{name}")
    plugins.reset()
    if with_testing:
        plugins.register_plugin(TestingPlugin(), "testing", "ssl-bench-testing")


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli_exit_code(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# ---- loading ------------------------------------------------------------------------------


def test_plugin_that_fails_to_import_is_a_one_line_warning_and_strict_makes_it_fatal(
        fresh_plugins, tmp_path, monkeypatch, capsys) -> None:
    _plugin_module(tmp_path, monkeypatch, "broken_plugin", "import no_such_package_xyz\n")
    results = tmp_path / "results"
    args = ["run", "--methods", "dummy-init", "--benchmarks", "tiny-seg", *SMOKE,
            "--results", str(results)]
    code, out = _run(args, capsys)
    assert code == 0
    warning = [line for line in out.splitlines() if "broken_plugin" in line]
    assert len(warning) == 1 and "dist-broken_plugin" in warning[0]
    assert "ModuleNotFoundError" in warning[0] and "no_such_package_xyz" in warning[0]
    assert {r.status for r in iter_records(results)[0]} == {"ok"}
    code, out = _run(args + ["--strict-plugins"], capsys)
    assert code == 2 and "error:" in out and "broken_plugin" in out and "--strict-plugins" in out


def test_invalid_meta_names_the_class_the_plugin_and_the_field(fresh_plugins, tmp_path,
                                                               monkeypatch) -> None:
    _plugin_module(tmp_path, monkeypatch, "badmeta_plugin", """
        from ssl_bench import hookimpl
        from ssl_bench.api import MethodMeta
        from ssl_bench.testing import DummyMethod

        class BadMeta(DummyMethod):
            meta = MethodMeta(id="bad-meta", kind="pretrain", name="x", paper="y")

        @hookimpl
        def register_methods(register):
            register(BadMeta)
    """)
    (failure,) = [f for f in plugins.load_failures() if f.name == "badmeta_plugin"]
    assert failure.distribution == "dist-badmeta_plugin"
    assert "class BadMeta" in failure.error and "'version'" in failure.error
    assert "\n" not in failure.error
    assert "dummy" in plugins.get_registries().methods  # the others still load


def test_class_without_meta_is_a_load_failure_not_a_crash(fresh_plugins, tmp_path, monkeypatch,
                                                          capsys) -> None:
    _plugin_module(tmp_path, monkeypatch, "nometa_plugin", """
        from ssl_bench import hookimpl
        from ssl_bench.testing import DummyMethod

        class NoMeta:
            pass

        @hookimpl
        def register_methods(register):
            register(NoMeta)
    """)
    (failure,) = [f for f in plugins.load_failures() if f.name == "nometa_plugin"]
    assert "class NoMeta" in failure.error and "no `meta`" in failure.error
    code, out = _run(["list", "--json"], capsys)
    assert code == 0 and "nometa_plugin" in out
    data, _ = json.JSONDecoder().raw_decode(out[out.index("{"):])
    assert "dummy" in {m["id"] for m in data["methods"]}


def test_duplicate_id_fails_only_commands_touching_it_and_can_be_disabled(
        fresh_plugins, tmp_path, monkeypatch, capsys) -> None:
    _plugin_module(tmp_path, monkeypatch, "clash_plugin", """
        from ssl_bench import hookimpl
        from ssl_bench.testing import DummyMethod

        @hookimpl
        def register_methods(register):
            register(DummyMethod)  # id "dummy", as the test doubles
    """)
    results = tmp_path / "results"
    code, out = _run(["run", "--methods", "dummy-init", "--benchmarks", "tiny-seg", *SMOKE,
                      "--results", str(results)], capsys)
    assert code == 0  # an unrelated method runs
    code, out = _run(["run", "--methods", "dummy", "--benchmarks", "tiny-seg", *SMOKE,
                      "--results", str(results)], capsys)
    (line,) = [x for x in out.splitlines() if x.startswith("error:")]
    assert code == 2 and "'dummy'" in line and "dist-clash_plugin" in line
    assert "SSL_BENCH_DISABLE_PLUGINS" in line
    monkeypatch.setenv("SSL_BENCH_DISABLE_PLUGINS", "dist-clash_plugin")
    plugins.reset()
    plugins.register_plugin(TestingPlugin(), "testing", "ssl-bench-testing")
    assert "clash_plugin" not in {p.name for p in plugins.loaded_plugins()}
    assert plugins.get_registries().methods.get("dummy") is DummyMethod


# ---- the encoder contract -----------------------------------------------------------------


class _Wrong(Encoder):
    def __init__(self, mode: str) -> None:
        super().__init__([8, 16], [2, 4])
        self.inner = TinyConvEncoder()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        a, b = self.inner(x)
        if self.mode == "channels":
            return [a, torch.cat([b, b], dim=1)]
        if self.mode == "count":
            return [b]
        if self.mode == "stride":
            return [a, b[:, :, ::2, ::2]]
        if self.mode == "nan":
            return [a, b * float("nan")]
        return [a * 0, b * 0]  # zeros: constant


@pytest.mark.parametrize("mode, words", [
    ("channels", "map 1 has 32 channels, declared 16"),
    ("count", "returned 1 maps but declares 2"),
    ("stride", "stride 4 gives 8"),
    ("nan", "NaN or infinite"),
    ("zeros", "same output for every probe image"),
])
def test_encoder_contract_violations_are_one_line(mode: str, words: str) -> None:
    torch.manual_seed(0)
    with pytest.raises(EncoderContractError) as info:
        check_encoder("bad", _Wrong(mode), 32, torch.device("cpu"))
    assert words in str(info.value) and "'bad'" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_sound_encoder_passes_the_contract() -> None:
    torch.manual_seed(0)
    check_encoder("ok", TinyConvEncoder(), 32, torch.device("cpu"))


class ZeroEncoderMethod(DummyMethod):
    meta = DummyMethod.meta.model_copy(update={"id": "zero-encoder", "pretrain_input": "none"})

    def encoder(self, model: nn.Module) -> Encoder:
        return _Wrong("zeros")


class _Plugin:
    def __init__(self, *classes: type) -> None:
        self.classes = classes

    @hookimpl
    def register_methods(self, register: Callable[[Any], None]) -> None:
        for cls in self.classes:
            register(cls)


def test_zero_encoder_fails_its_cells_with_the_reason_on_the_console(testing_plugin, tmp_path,
                                                                     capsys) -> None:
    plugins.register_plugin(_Plugin(ZeroEncoderMethod), "zero", "ssl-bench-zero")
    results = tmp_path / "results"
    code, out = _run(["run", "--methods", "zero-encoder", "--benchmarks", "tiny-phase", *SMOKE,
                      "--results", str(results)], capsys)
    assert code == 1
    (record,) = iter_records(results)[0]
    assert record.status == "failed" and "same output for every probe image" in record.error
    assert "failed" in out and "zero-encoder|tiny-phase" in out
    assert "same output for every probe image" in out


# ---- exceptions in plugin code --------------------------------------------------------------


def test_training_step_exception_keeps_its_traceback_in_the_record_and_with_debug(
        testing_plugin, tmp_path, capsys) -> None:
    results = tmp_path / "results"
    args = ["run", "--methods", "failing", "--benchmarks", "tiny-seg", *SMOKE,
            "--results", str(results)]
    code, out = _run(args, capsys)
    assert code == 1
    (record,) = iter_records(results)[0]
    assert record.error == "pretraining failed: RuntimeError: this method always fails"
    assert 'testing.py", line' in record.traceback and "in training_step" in record.traceback
    assert "failing|tiny-seg|0.5|0: pretraining failed: RuntimeError: this method always " \
           "fails" in out
    assert "Traceback" not in out
    code, out = _run(["--debug", *args], capsys)
    assert code == 1 and "Traceback" in out and "in training_step" in out


# ---- configs ---------------------------------------------------------------------------------


def test_missing_profile_is_an_error_not_a_silent_default() -> None:
    class NoCpu(DummyMethod):
        profiles = {"smoke": DummyMethod.profiles["smoke"]}

    with pytest.raises(SSLBenchError, match=r"no 'cpu' profile \(it has: smoke\)"):
        NoCpu.make_config("cpu")


def test_unknown_optimizer_is_an_error_and_a_method_may_bring_its_own() -> None:
    from ssl_bench.api import MethodConfig

    class AnyOptimizerConfig(MethodConfig):
        optimizer: str = "adamw"  # type: ignore[assignment]

    class Lamb(DummyMethod):
        Config = AnyOptimizerConfig

    method = Lamb(Lamb.make_config("smoke", {"optimizer": "lamb"}), None)  # type: ignore[arg-type]
    model = method.build()
    with pytest.raises(SSLBenchError, match="unknown optimizer 'lamb'; use adamw, adam, sgd"):
        build_optimizer(method, model)

    class OwnOptimizer(Lamb):
        def configure_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
            return torch.optim.RMSprop(model.parameters(), lr=1e-3)

    own = OwnOptimizer(OwnOptimizer.make_config("smoke", {"optimizer": "lamb"}), None)  # type: ignore[arg-type]
    assert isinstance(build_optimizer(own, model), torch.optim.RMSprop)


# ---- datasets and benchmarks -----------------------------------------------------------------


def test_dataset_without_synthetic_version_is_skipped_with_a_note_and_unknown_dataset_fails(
        fresh_plugins, tmp_path, monkeypatch, capsys) -> None:
    _plugin_module(tmp_path, monkeypatch, "realonly_plugin", """
        from ssl_bench import hookimpl
        from ssl_bench.api import Benchmark
        from ssl_bench.testing import TinySegDataset
        from ssl_bench.api import Dataset

        class RealOnly(TinySegDataset):
            meta = TinySegDataset.meta.model_copy(update={"id": "real-only"})
            write_synthetic = Dataset.write_synthetic  # no synthetic version

        @hookimpl
        def register_datasets(register):
            register(RealOnly)

        @hookimpl
        def register_benchmarks(register):
            register(Benchmark(id="real-only-seg", dataset="real-only",
                               task="semantic-segmentation", label_fracs=(0.5,)))
    """)
    results = tmp_path / "results"
    base = ["run", "--methods", "dummy-init", *SMOKE, "--results", str(results)]
    code, out = _run(base + ["--benchmarks", "all", "--dry-run"], capsys)
    assert code == 0
    assert "skipped benchmark real-only-seg: dataset 'real-only' (dist-realonly_plugin) has no " \
           "synthetic version" in out
    code, out = _run(base + ["--benchmarks", "real-only-seg"], capsys)
    assert code == 2 and "has no synthetic version" in out and "--data-root" in out

    monkeypatch.setattr(plugins, "_registries", None)
    regs = plugins.get_registries()
    from ssl_bench.api import Benchmark

    regs.benchmarks.add("typo-bench", Benchmark(id="typo-bench", dataset="cholec8O",
                                                task="phase-recognition"), "dist-typo")
    code, out = _run(base + ["--benchmarks", "all", "--dry-run"], capsys)
    assert code == 2
    (line,) = [x for x in out.splitlines() if x.startswith("error:")]
    assert "benchmark 'typo-bench' (dist-typo) names dataset 'cholec8O'" in line
    assert "did you mean cholec80" in line


def test_data_root_runs_the_benchmarks_whose_data_is_there(fresh_plugins, tmp_path,
                                                            capsys) -> None:
    from ssl_bench.default_plugins.datasets.cholec80 import Cholec80

    root = tmp_path / "data"
    Cholec80.write_synthetic(root / "cholec80", size="small")
    code, out = _run(["run", "--data-root", str(root), "--methods", "random-init",
                      "--benchmarks", "all", "--profile", "smoke", "--seeds", "0",
                      "--label-frac", "0.5", "--results", str(tmp_path / "r"), "--dry-run"],
                     capsys)
    assert code == 0, out
    assert "random-init|cholec80-phase|0.5|0: compute: no record yet" in out
    skipped = [x for x in out.splitlines() if x.startswith("skipped benchmark")]
    assert any("btcv-organ" in x and str(root / "btcv") in x for x in skipped)
    assert any("cholecseg8k-seg" in x for x in skipped)
    code, out = _run(["run", "--data-root", str(root), "--methods", "random-init",
                      "--benchmarks", "btcv-organ", "--profile", "smoke",
                      "--results", str(tmp_path / "r"), "--dry-run"], capsys)
    assert code == 2 and "benchmark 'btcv-organ': its dataset folder" in out
