"""The hooks a plugin may implement.

Every hook that adds things receives a ``register`` callback and returns nothing
(the pattern of llm and datasette). Implementations may accept fewer arguments than a
spec declares (pluggy's opt-in arguments), so hooks only ever grow by new keyword
arguments.

A plugin is a module registered under the entry-point group ``ssl_bench``::

    [project.entry-points.ssl_bench]
    my-method = "my_package.plugin"

and decorates its implementations with :data:`ssl_bench.hookimpl`.

Methods, datasets and tasks may be registered as the class itself or, so that loading the
plugin imports no torch, as a :class:`ssl_bench.lazy.LazyClass` (import path + ``meta`` +
profile names), imported only by the commands that need the class (docs/plugin_hooks.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from pluggy import HookimplMarker, HookspecMarker

if TYPE_CHECKING:
    import click

hookspec = HookspecMarker("ssl_bench")
hookimpl = HookimplMarker("ssl_bench")


@hookspec
def register_methods(register: Callable[[Any], None]) -> None:
    """Add pretraining or semi-supervised methods.

    :param register: call ``register(MethodClass)`` (or ``register(LazyClass(...))``) once per
        method; the class is a subclass of :class:`ssl_bench.api.Method` with a ``meta``
        (:class:`ssl_bench.api.MethodMeta`).
    """


@hookspec
def register_datasets(register: Callable[[Any], None]) -> None:
    """Add dataset readers.

    :param register: call ``register(DatasetClass)`` (or ``register(LazyClass(...))``) once per
        dataset; the class is a subclass of :class:`ssl_bench.api.Dataset` with a ``meta``
        (:class:`ssl_bench.api.DatasetMeta`).
    """


@hookspec
def register_tasks(register: Callable[[Any], None]) -> None:
    """Add downstream tasks (protocol + metric set).

    :param register: call ``register(TaskClass)`` (or ``register(LazyClass(...))``) once per
        task; the class is a subclass of :class:`ssl_bench.api.Task` with a ``meta``
        (:class:`ssl_bench.api.TaskMeta`).
    """


@hookspec
def register_benchmarks(register: Callable[[Any], None]) -> None:
    """Add benchmarks: a dataset bound to a task, a protocol, label fractions and seeds.

    :param register: call ``register(Benchmark(...))`` once per benchmark
        (:class:`ssl_bench.api.Benchmark`).
    """


@hookspec
def register_commands(cli: "click.Group") -> None:
    """Add subcommands to the ``ssl-bench`` command group.

    :param cli: the root click group; call ``cli.command()`` / ``cli.add_command``.
    """
