"""Plugin loading, registries, duplicate and unknown ids, SSL_BENCH_LOAD_PLUGINS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

from ssl_bench import plugins
from ssl_bench.errors import DuplicateIdError, UnknownIdError
from ssl_bench.registry import Registry
from ssl_bench.testing import DummyMethod, TestingPlugin


@pytest.fixture
def fresh_plugins():
    plugins.reset()
    yield
    plugins.reset()


def test_builtins_register_through_the_core_entry_points(fresh_plugins) -> None:
    names = {p.name for p in plugins.loaded_plugins()}
    assert {"builtin-datasets", "builtin-tasks", "builtin-methods", "builtin-benchmarks"} <= names
    assert all(p.distribution == "ssl-bench" for p in plugins.loaded_plugins())
    regs = plugins.get_registries()
    assert "cholec80-phase" in regs.benchmarks
    assert regs.benchmarks.entry("cholec80-phase").plugin == "ssl-bench"


def test_duplicate_id_names_both_plugins_only_when_touched() -> None:
    reg: Registry[object] = Registry("method")
    reg.add("moco-v2", object(), "ssl-bench")
    reg.add("simclr", object(), "ssl-bench")
    reg.add("moco-v2", object(), "ssl-bench-moco")  # no error yet: nothing touched it
    assert reg.get("simclr") is not None and reg.resolve("simclr") == ["simclr"]
    for touch in (lambda: reg.get("moco-v2"), lambda: reg.resolve("moco-v2"),
                  lambda: reg.resolve("all")):
        with pytest.raises(DuplicateIdError) as info:
            touch()
        message = str(info.value)
        assert "'ssl-bench'" in message and "'ssl-bench-moco'" in message
        assert "SSL_BENCH_DISABLE_PLUGINS" in message and "\n" not in message


def test_duplicate_id_across_registered_plugins(fresh_plugins) -> None:
    class Again:
        from ssl_bench import hookimpl

        @hookimpl
        def register_methods(self, register):
            register(DummyMethod)

    plugins.register_plugin(TestingPlugin(), "testing", "ssl-bench-testing")
    plugins.register_plugin(Again(), "again", "ssl-bench-again")
    regs = plugins.get_registries()  # building the registries does not fail
    assert "tiny-phase" in regs.benchmarks
    with pytest.raises(DuplicateIdError, match="ssl-bench-testing.*ssl-bench-again|"
                                               "ssl-bench-again.*ssl-bench-testing"):
        regs.methods.get("dummy")


def test_unknown_id_suggests_close_names() -> None:
    reg: Registry[object] = Registry("method")
    for name in ("moco-v2", "simclr", "byol"):
        reg.add(name, object(), "x")
    with pytest.raises(UnknownIdError) as info:
        reg.get("moco-2")
    assert "did you mean moco-v2" in str(info.value)
    assert reg.resolve("all") == ["byol", "moco-v2", "simclr"]
    assert reg.resolve("simclr,byol") == ["simclr", "byol"]


def test_load_plugins_env_limits_what_loads(fresh_plugins, monkeypatch) -> None:
    monkeypatch.setenv("SSL_BENCH_LOAD_PLUGINS", "builtin-benchmarks")
    names = {p.name for p in plugins.loaded_plugins()}
    assert names == {"builtin-benchmarks"}
    monkeypatch.setenv("SSL_BENCH_LOAD_PLUGINS", "")
    plugins.reset()
    assert plugins.loaded_plugins() == []


def test_broken_plugin_is_reported_and_others_still_load(fresh_plugins, monkeypatch) -> None:
    real = plugins.entry_points

    def fake_entry_points(group: str):
        eps = list(real(group=group))
        return eps + [EntryPoint(name="broken", value="no_such_module_xyz.plugin", group=group)]

    monkeypatch.setattr(plugins, "entry_points", fake_entry_points)
    monkeypatch.setenv("SSL_BENCH_LOAD_PLUGINS", "broken,builtin-benchmarks")
    loaded = {p.name for p in plugins.loaded_plugins()}
    failures = plugins.load_failures()
    assert loaded == {"builtin-benchmarks"}
    assert [f.name for f in failures] == ["broken"]
    assert "ModuleNotFoundError" in failures[0].error


def test_list_json_outside_pytest_loads_all_installed_plugins() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SSL_BENCH_LOAD_PLUGINS"}
    out = subprocess.run([sys.executable, "-m", "ssl_bench.cli", "list", "--json"],
                         capture_output=True, text=True, env=env, check=True)
    data = json.loads(out.stdout)
    assert set(data) == {"methods", "datasets", "tasks", "benchmarks", "conflicts"}
    assert data.pop("conflicts") == []
    for kind in data.values():
        for item in kind:
            assert {"id", "version", "plugin"} <= set(item)
