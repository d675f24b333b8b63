"""Plugin loading (pluggy + entry points) and the registries built from the hooks.

Every plugin, the built-ins included, is a module under the entry-point group
``ssl_bench``. ``SSL_BENCH_LOAD_PLUGINS=a,b`` loads only the named entry points or
distributions (an empty value loads none). Under pytest (``sys._called_from_test``) only the
core's own entry points load unless ``SSL_BENCH_LOAD_PLUGINS`` says otherwise, so tests never
pick up whatever happens to be installed.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any, Callable

import pluggy

from ssl_bench import hookspecs
from ssl_bench.registry import Registry

GROUP = "ssl_bench"
CORE_DISTRIBUTION = "ssl-bench"


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    module: str
    hooks: list[str] = field(default_factory=list)


@dataclass
class LoadFailure:
    name: str
    distribution: str
    error: str


@dataclass
class Registries:
    methods: Registry[Any]
    datasets: Registry[Any]
    tasks: Registry[Any]
    benchmarks: Registry[Any]


_pm: pluggy.PluginManager | None = None
_plugins: dict[str, PluginInfo] = {}
_failures: list[LoadFailure] = []
_registries: Registries | None = None


def _selected(ep: EntryPoint) -> bool:
    wanted = os.environ.get("SSL_BENCH_LOAD_PLUGINS")
    dist = ep.dist.name if ep.dist else ""
    if wanted is not None:
        names = {n.strip() for n in wanted.split(",") if n.strip()}
        return ep.name in names or dist in names
    if hasattr(sys, "_called_from_test"):
        return dist == CORE_DISTRIBUTION
    return True


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loading entry points on first use."""
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager("ssl_bench")
        pm.add_hookspecs(hookspecs)
        for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
            if not _selected(ep):
                continue
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin is reported; the others still load
                _failures.append(LoadFailure(ep.name, dist, f"{type(exc).__name__}: {exc}"))
                continue
            if pm.is_registered(module) or pm.get_plugin(ep.name) is not None:
                continue
            pm.register(module, name=ep.name)
            _plugins[ep.name] = PluginInfo(ep.name, dist, version, module.__name__)
        _pm = pm
    return _pm


def register_plugin(module: ModuleType | object, name: str, distribution: str = "local") -> None:
    """Register a plugin object by hand (tests, ``--plugins-dir``); resets the registries."""
    global _registries
    pm = get_plugin_manager()
    pm.register(module, name=name)
    _plugins[name] = PluginInfo(name, distribution, "local", getattr(module, "__name__", name))
    _registries = None


def unregister_plugin(name: str) -> None:
    global _registries
    pm = get_plugin_manager()
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    _plugins.pop(name, None)
    _registries = None


def reset() -> None:
    """Forget every loaded plugin; the next use reloads entry points (tests use this)."""
    global _pm, _registries
    _pm = None
    _registries = None
    _plugins.clear()
    _failures.clear()


def plugin_display_name(plugin_name: str) -> str:
    info = _plugins.get(plugin_name)
    return info.distribution if info else plugin_name


def _collect(pm: pluggy.PluginManager, hook_name: str, registry: Registry[Any],
             id_of: Callable[[Any], str]) -> None:
    caller = getattr(pm.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):
        plugin = plugin_display_name(impl.plugin_name)

        def register(obj: Any, _plugin: str = plugin) -> None:
            registry.add(id_of(obj), obj, _plugin)

        kwargs = {"register": register}
        impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})


def get_registries() -> Registries:
    """Call the registration hooks of every loaded plugin once and cache the result."""
    global _registries
    if _registries is None:
        pm = get_plugin_manager()
        regs = Registries(Registry("method"), Registry("dataset"), Registry("task"),
                          Registry("benchmark"))
        _collect(pm, "register_methods", regs.methods, lambda cls: cls.meta.id)
        _collect(pm, "register_datasets", regs.datasets, lambda cls: cls.meta.id)
        _collect(pm, "register_tasks", regs.tasks, lambda cls: cls.meta.id)
        _collect(pm, "register_benchmarks", regs.benchmarks, lambda b: b.id)
        _registries = regs
    return _registries


def loaded_plugins() -> list[PluginInfo]:
    pm = get_plugin_manager()
    infos = []
    for name, info in sorted(_plugins.items()):
        plugin = pm.get_plugin(name)
        if plugin is None:
            continue
        info.hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        infos.append(info)
    return infos


def load_failures() -> list[LoadFailure]:
    get_plugin_manager()
    return list(_failures)
