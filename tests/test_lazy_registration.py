"""Lazy registration: classes registered by import path with their metadata.
Start-up commands import no torch; a class is imported and checked against its registration
only when a command needs it; a broken or mismatched one is one line naming the plugin; a
class registered directly keeps working."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

import pytest

from ssl_bench import hookimpl, plugins
from ssl_bench.api import DatasetMeta, LazyClass
from ssl_bench.cli import listing
from ssl_bench.errors import PluginLoadError
from ssl_bench.records import write_record
from ssl_bench.testing import DummyMethod, TestingPlugin, cli_exit_code, score_record

HEAVY = ("torch", "timm", "monai", "mmengine", "lightly")
#: runs one command the way the console script does, then names the heavy modules it imported
CHILD = textwrap.dedent("""
    import sys
    from ssl_bench.cli import main
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        assert not exc.code, exc.code
    print("HEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
""").format(heavy=HEAVY)


@pytest.fixture
def fresh_plugins() -> Any:
    plugins.reset()
    yield
    plugins.reset()


def _records(results: Path) -> None:
    for method, base in (("a", 70.0), ("b", 80.0)):
        for seed in range(2):
            write_record(results, score_record(method, seed, base + seed))


def _child(args: list[str]) -> tuple[str, list[str]]:
    """stdout of ``ssl-bench ARGS`` in a fresh interpreter with every installed plugin loaded,
    and the heavy modules it imported."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SSL_BENCH_LOAD_PLUGINS", "SSL_BENCH_DISABLE_PLUGINS")}
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    (line,) = [x for x in out.stderr.splitlines() if x.startswith("HEAVY=")]
    return out.stdout, [m for m in line[len("HEAVY="):].split(",") if m]


@pytest.mark.parametrize("args", [["list", "--json"], ["--help"], ["plugins", "--json"],
                                  ["leaderboard", "--results", "{results}", "--format", "md"]],
                         ids=["list", "help", "plugins", "leaderboard"])
def test_start_up_commands_import_no_torch(args: list[str], tmp_path: Path) -> None:
    results = tmp_path / "results"
    _records(results)
    stdout, heavy = _child([a.format(results=results) for a in args])
    assert heavy == []
    if args[0] == "plugins":  # every installed plugin loaded, none failed
        data = json.loads(stdout)
        installed = {ep.name for ep in entry_points(group=plugins.GROUP)}
        assert {p["name"] for p in data["plugins"]} == installed and data["failed"] == []
    if args[0] == "list":
        data = json.loads(stdout)
        assert {"simclr", "mae", "random-init"} <= {m["id"] for m in data["methods"]}
        assert data["conflicts"] == []
    if args[0] == "leaderboard":
        assert (results / "leaderboard" / "leaderboard.md").exists()


def test_listing_from_registrations_equals_listing_from_the_classes(fresh_plugins,
                                                                      monkeypatch) -> None:
    """Every installed plugin: the metadata and profile names registered by path are the
    classes' own, so ``list`` shows what runs."""
    names = ",".join(ep.name for ep in entry_points(group=plugins.GROUP))
    monkeypatch.setenv("SSL_BENCH_LOAD_PLUGINS", names)
    plugins.reset()
    lazy_listing = listing()
    regs = plugins.resolved_registries()
    assert plugins.load_failures() == []
    lazy = 0
    for registry in (regs.methods, regs.datasets, regs.tasks):
        for entry in registry:
            cls = entry.obj
            lazy += isinstance(entry.registered, LazyClass)
            assert entry.meta == cls.meta, entry.id
            assert sorted(entry.profiles) == sorted(getattr(cls, "profiles", {})), entry.id
    assert lazy == len(regs.methods) + len(regs.datasets) + len(regs.tasks)
    assert listing() == lazy_listing


def test_builtin_ids_are_unchanged(fresh_plugins) -> None:
    data = listing()
    assert [m["id"] for m in data["methods"]] == sorted(
        ["random-init", "imagenet", "supervised", "bn-adapt", "bn-adapt-random", "simclr",
         "moco-v2", "byol", "dino", "mae"])
    assert [d["id"] for d in data["datasets"]] == sorted(
        ["cholec80", "m2cai16-workflow", "cholecseg8k", "m2caiseg", "endovis2017",
         "kvasir-instrument", "btcv", "msd", "amos"])
    assert [t["id"] for t in data["tasks"]] == sorted(
        ["phase-recognition", "semantic-segmentation", "organ-segmentation", "tool-presence"])
    simclr = next(m for m in data["methods"] if m["id"] == "simclr")
    assert simclr["profiles"] == ["cpu", "paper", "smoke"] and simclr["version"] == "3"
    cholec80 = next(d for d in data["datasets"] if d["id"] == "cholec80")
    assert cholec80["classes"] == 7 and cholec80["modality"] == "video"


# ---- a third-party plugin registering by path ------------------------------------------------


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, code: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(code))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)


class _Registers:
    def __init__(self, *registered: Any) -> None:
        self.registered = registered

    @hookimpl
    def register_methods(self, register: Callable[[Any], None]) -> None:
        for item in self.registered:
            register(item)


LAZY_META = DummyMethod.meta.model_copy(update={"id": "lazy-dummy"})
PROFILE_NAMES = tuple(DummyMethod.profiles)
GOOD_MODULE = """
    from ssl_bench.testing import DummyMethod

    class LazyDummy(DummyMethod):
        meta = DummyMethod.meta.model_copy(update={"id": "lazy-dummy"})
"""


def test_lazy_class_is_imported_on_first_use_only(fresh_plugins, tmp_path, monkeypatch) -> None:
    _module(tmp_path, monkeypatch, "lazy_good_plugin", GOOD_MODULE)
    plugins.register_plugin(_Registers(LazyClass("lazy_good_plugin:LazyDummy", LAZY_META,
                                                 PROFILE_NAMES)), "lazy", "ssl-bench-lazy")
    data = listing()
    row = next(m for m in data["methods"] if m["id"] == "lazy-dummy")
    assert row["plugin"] == "ssl-bench-lazy" and row["profiles"] == sorted(PROFILE_NAMES)
    assert "lazy_good_plugin" not in sys.modules  # listing imported nothing
    cls = plugins.get_registries().methods.get("lazy-dummy")
    assert cls.__name__ == "LazyDummy" and cls.meta == LAZY_META
    assert "lazy_good_plugin" in sys.modules


@pytest.mark.parametrize("code, registered, words", [
    (GOOD_MODULE.replace('"lazy-dummy"}', '"lazy-dummy", "version": "9"}'),
     "lazy_bad_plugin:LazyDummy", ["field 'version'", "'9'"]),
    (GOOD_MODULE + "        profiles = {'smoke': {}}\n", "lazy_bad_plugin:LazyDummy",
     ["field 'profiles'"]),
    (GOOD_MODULE, "lazy_bad_plugin:Missing", ["has no 'Missing'"]),
    ("import no_such_package_xyz\n", "lazy_bad_plugin:LazyDummy",
     ["cannot import lazy_bad_plugin", "ModuleNotFoundError", "no_such_package_xyz"]),
], ids=["meta-field", "profiles", "no-class", "import-error"])
def test_a_broken_lazy_class_is_one_line_naming_the_plugin(
        fresh_plugins, tmp_path, monkeypatch, capsys, code: str, registered: str,
        words: list[str]) -> None:
    _module(tmp_path, monkeypatch, "lazy_bad_plugin", code)
    plugins.register_plugin(TestingPlugin(), "testing", "ssl-bench-testing")
    plugins.register_plugin(_Registers(LazyClass(registered, LAZY_META, PROFILE_NAMES)),
                            "lazy-bad", "ssl-bench-lazy-bad")
    assert "lazy-dummy" in {m["id"] for m in listing()["methods"]}  # listing never imports
    with pytest.raises(PluginLoadError) as info:
        plugins.get_registries().methods.get("lazy-dummy")
    message = str(info.value)
    assert "\n" not in message and "'ssl-bench-lazy-bad'" in message and "'lazy-dummy'" in message
    assert all(w in message for w in words), message
    assert "SSL_BENCH_DISABLE_PLUGINS=ssl-bench-lazy-bad" in message
    # commands that run code import everything first: the broken class becomes a load failure
    regs = plugins.resolved_registries()
    assert "lazy-dummy" not in regs.methods and "dummy" in regs.methods  # the others still load
    (line,) = [x for x in plugins.load_failure_lines() if "lazy-bad" in x]
    assert "'lazy-bad' (ssl-bench-lazy-bad)" in line and all(w in line for w in words)
    # and `run --strict-plugins` stops on it, naming the plugin
    code_ = cli_exit_code(["run", "--methods", "dummy", "--benchmarks", "tiny-seg",
                           "--strict-plugins", "--dry-run", "--quiet"])
    out = capsys.readouterr()
    assert code_ == 2 and "lazy-bad" in out.err and "--strict-plugins" in out.err


def test_lazy_class_with_the_wrong_kind_of_meta_is_a_load_failure(fresh_plugins) -> None:
    meta = DatasetMeta(id="not-a-method", version="1", name="x", modality="image",
                       domain="surgical", label_kind="mask", classes=("a",), license="x",
                       citation="x")
    plugins.register_plugin(_Registers(LazyClass("x.y:Z", meta)), "wrong", "ssl-bench-wrong")
    (failure,) = [f for f in plugins.load_failures() if f.name == "wrong"]
    assert "DatasetMeta, not a MethodMeta" in failure.error
    assert "not-a-method" not in plugins.get_registries().methods


@pytest.mark.parametrize("path", ["no_colon.module", "pkg.mod:", "pkg..mod:Cls", ":Cls"])
def test_lazy_class_path_must_be_module_colon_class(path: str) -> None:
    with pytest.raises(ValueError, match="package.module:ClassName"):
        LazyClass(path, LAZY_META)


def test_a_class_registered_directly_still_works(fresh_plugins) -> None:
    plugins.register_plugin(TestingPlugin(), "testing", "ssl-bench-testing")
    entry = plugins.get_registries().methods.entry("dummy")
    assert entry.obj is DummyMethod and entry.registered is DummyMethod
    assert entry.meta is DummyMethod.meta and set(entry.profiles) == set(DummyMethod.profiles)
    assert not entry.lazy


def test_the_documented_migration_lists_without_importing_and_runs_the_class(
        fresh_plugins, tmp_path, monkeypatch) -> None:
    """docs/writing-a-plugin.md step 6: meta.py + plugin.py registering step 2's class by
    path."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "writing-a-plugin.md").read_text()
    step2, meta_py, plugin_py = re.findall(r"```python\n(.*?)```", doc, flags=re.S)[:3]
    package = tmp_path / "ssl_bench_mymethod"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "method.py").write_text(step2)  # its meta equals MYMETHOD_META field by field
    (package / "meta.py").write_text(meta_py)
    (package / "plugin.py").write_text(plugin_py)
    monkeypatch.syspath_prepend(str(tmp_path))
    names = ["ssl_bench_mymethod", "ssl_bench_mymethod.meta", "ssl_bench_mymethod.method",
             "ssl_bench_mymethod.plugin"]
    try:
        module = importlib.import_module("ssl_bench_mymethod.plugin")
        plugins.register_plugin(module, "mymethod", "ssl-bench-mymethod")
        row = next(m for m in listing()["methods"] if m["id"] == "mymethod")
        assert row["plugin"] == "ssl-bench-mymethod"
        assert row["profiles"] == ["cpu", "paper", "smoke"]
        assert "ssl_bench_mymethod.method" not in sys.modules
        cls = plugins.resolved_registries().methods.get("mymethod")
        assert cls.__module__ == "ssl_bench_mymethod.method" and plugins.load_failures() == []
    finally:
        for name in names:
            sys.modules.pop(name, None)
