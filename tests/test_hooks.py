"""Every hook has a docstring, a section in docs/plugin_hooks.md and a test here."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ssl_bench import hookimpl, hookspecs, plugins
from ssl_bench.api import Benchmark
from ssl_bench.testing import DummyMethod, TinySegDataset

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugin_hooks.md"
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(fn, "ssl_bench_spec")]


@pytest.fixture
def fresh():
    plugins.reset()
    yield
    plugins.reset()


def test_hooks_are_found() -> None:
    assert set(HOOKS) >= {"register_methods", "register_datasets", "register_tasks",
                          "register_benchmarks", "register_commands"}


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_docstring_docs_section_and_test(name: str) -> None:
    fn = getattr(hookspecs, name)
    assert (fn.__doc__ or "").strip(), f"{name} has no docstring"
    args = ", ".join(inspect.signature(fn).parameters)
    assert f"## {name}({args})" in DOCS.read_text(), f"{name} has no section in {DOCS.name}"
    assert hasattr(sys.modules[__name__], f"test_hook_{name}"), f"{name} has no test"


class _Plugin:
    @hookimpl
    def register_methods(self, register):
        register(DummyMethod)

    @hookimpl
    def register_datasets(self, register):
        register(TinySegDataset)

    @hookimpl
    def register_tasks(self, register):
        from ssl_bench.default_plugins.tasks.segmentation import SemanticSegmentation

        class Renamed(SemanticSegmentation):
            meta = SemanticSegmentation.meta.model_copy(update={"id": "my-seg"})

        register(Renamed)

    @hookimpl
    def register_benchmarks(self, register):
        register(Benchmark(id="my-bench", dataset="tiny-seg", task="my-seg"))

    @hookimpl
    def register_commands(self, cli):
        @cli.command(name="hello-hook")
        def hello() -> None:
            """Say hello."""
            click.echo("hello from a plugin")


def _regs(fresh_plugin: object):
    plugins.register_plugin(fresh_plugin, "mine", "ssl-bench-mine")
    return plugins.get_registries()


def test_hook_register_methods(fresh) -> None:
    assert _regs(_Plugin()).methods.entry("dummy").plugin == "ssl-bench-mine"


def test_hook_register_datasets(fresh) -> None:
    assert _regs(_Plugin()).datasets.get("tiny-seg") is TinySegDataset


def test_hook_register_tasks(fresh) -> None:
    assert _regs(_Plugin()).tasks.get("my-seg").meta.id == "my-seg"


def test_hook_register_benchmarks(fresh) -> None:
    assert _regs(_Plugin()).benchmarks.get("my-bench").task == "my-seg"


def test_hook_register_commands(fresh) -> None:
    from ssl_bench.cli import cli

    plugins.register_plugin(_Plugin(), "mine", "ssl-bench-mine")
    plugins.get_plugin_manager().hook.register_commands(cli=cli)
    try:
        result = CliRunner().invoke(cli, ["hello-hook"])
        assert result.output.strip() == "hello from a plugin"
    finally:
        cli.commands.pop("hello-hook", None)
