"""Plugin loading (pluggy + entry points) and the registries built from the hooks.

Every plugin, the built-ins included, is a module under the entry-point group
``ssl_bench``. ``SSL_BENCH_LOAD_PLUGINS=a,b`` loads only the named entry points or
distributions (an empty value loads none); ``SSL_BENCH_DISABLE_PLUGINS=a,b`` excludes them.
Under pytest (``sys._called_from_test``) only the core's own entry points load unless
``SSL_BENCH_LOAD_PLUGINS`` says otherwise, so tests never pick up whatever happens to be
installed.

A broken plugin never breaks the others: a module that fails to import, a registration hook
that raises, or a registered class without a valid ``meta`` becomes a :class:`LoadFailure`
(one line naming the plugin, the class and the field) and the rest loads. Commands print
those lines as warnings; ``ssl-bench run --strict-plugins`` makes them fatal. Two plugins
registering one id make that id a conflict: only commands touching it fail
(:mod:`ssl_bench.registry`).

A plugin may register a class by import path (:class:`ssl_bench.lazy.LazyClass`) with its
metadata: loading the plugin then imports no torch, and ``--help``, ``list``, ``plugins`` and
``leaderboard`` never import the class. Commands that run code import it on first use
(``Registry.get``) or all at once (:func:`resolved_registries`); one that fails to import, or
differs from its registration, is a load failure like a plugin that fails to import.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable

import pluggy

from ssl_bench import hookspecs
from ssl_bench.errors import describe_exception
from ssl_bench.lazy import LazyClass, LazyLoadError
from ssl_bench.registry import Registry

if TYPE_CHECKING:
    from ssl_bench.meta import DatasetMeta, MethodMeta, TaskMeta

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


def _names(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    return None if value is None else {n.strip() for n in value.split(",") if n.strip()}


def _selected(ep: EntryPoint) -> bool:
    dist = ep.dist.name if ep.dist else ""
    disabled = _names("SSL_BENCH_DISABLE_PLUGINS")
    if disabled and (ep.name in disabled or dist in disabled):
        return False
    wanted = _names("SSL_BENCH_LOAD_PLUGINS")
    if wanted is not None:
        return ep.name in wanted or dist in wanted
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
                prefix = ep.value.split(":")[0].split(".")[0]
                _failures.append(LoadFailure(ep.name, dist, describe_exception(exc, prefix)))
                continue
            if pm.is_registered(module) or pm.get_plugin(ep.name) is not None:
                continue
            pm.register(module, name=ep.name)
            _plugins[ep.name] = PluginInfo(ep.name, dist, version, module.__name__)
        _pm = pm
    return _pm


def register_plugin(module: ModuleType | object, name: str, distribution: str = "local") -> None:
    """Register a plugin object by hand (tests, ``--checkpoint`` rows, validity controls);
    resets the registries."""
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


def distribution_version(distribution: str) -> str:
    """The installed version of a plugin's distribution ("local" for plugins registered by
    hand or not installed as a distribution)."""
    from importlib import metadata

    for info in _plugins.values():
        if info.distribution == distribution and info.version != "?":
            return info.version
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "local"


@functools.lru_cache(maxsize=None)
def plugin_home_page(distribution: str) -> str | None:
    """The home page a distribution's metadata names (``Project-URL`` Homepage / Source /
    Repository, or ``Home-page``), None when it names none."""
    from importlib import metadata

    try:
        meta = metadata.metadata(distribution)
    except metadata.PackageNotFoundError:
        return None
    urls = {}
    for entry in meta.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        urls[label.strip().lower()] = url.strip()
    for label in ("homepage", "home", "source", "repository", "documentation"):
        if urls.get(label):
            return urls[label]
    home_page = meta.get_all("Home-page") or []
    return home_page[0] if home_page and home_page[0] else None


def source_root(obj: Any) -> Path:
    """The source folder (or file) whose code defines ``obj``: the top-level package of a
    third-party plugin (e.g. ``ssl_bench_distill/``); for the core's own plugins, the package of
    the defining module (e.g. ``ssl_bench/default_plugins/methods/``), whose shared helpers are
    covered by the ssl-bench version instead."""
    module = sys.modules[obj.__module__]
    top = obj.__module__.split(".")[0]
    if top == "ssl_bench" or getattr(sys.modules.get(top), "__file__", None) is None:
        file = Path(module.__file__ or "")
        return file.parent if module.__package__ else file
    top_file = Path(sys.modules[top].__file__ or "")
    return top_file.parent if top_file.name == "__init__.py" else top_file


@functools.lru_cache(maxsize=None)
def _tree_hash(root: str) -> str:
    path = Path(root)
    files = [path] if path.is_file() else sorted(path.rglob("*.py"))
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path.parent if path.is_file() else path)).encode())
        digest.update(b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def source_hash(obj: Any) -> str:
    """sha256 (16 hex digits) of the ``.py`` files under :func:`source_root` of ``obj``."""
    return _tree_hash(str(source_root(obj)))


def plugin_display_name(plugin_name: str) -> str:
    info = _plugins.get(plugin_name)
    return info.distribution if info else plugin_name


class InvalidRegistration(Exception):
    """A plugin registered an object the registry cannot take (reported as a load failure)."""


def _class_meta_id(
    meta_type: type[MethodMeta] | type[DatasetMeta] | type[TaskMeta],
) -> Callable[[Any], str]:
    """The id of a registered class after checking its ``meta``."""

    def id_of(cls: Any) -> str:
        if isinstance(cls, LazyClass):
            if not isinstance(cls.meta, meta_type):
                raise InvalidRegistration(f"LazyClass {cls.path}: `meta` is a "
                                          f"{type(cls.meta).__name__}, not a {meta_type.__name__}")
            return str(cls.meta.id)
        name = getattr(cls, "__name__", repr(cls))
        if not isinstance(cls, type):
            raise InvalidRegistration(f"registered {name}, which is not a class; register the "
                                      f"class itself")
        meta = getattr(cls, "meta", None)
        if meta is None:
            raise InvalidRegistration(f"class {name}: no `meta`; give it "
                                      f"meta = {meta_type.__name__}(id=..., version=..., ...)")
        if not isinstance(meta, meta_type):
            raise InvalidRegistration(f"class {name}: `meta` is a {type(meta).__name__}, not a "
                                      f"{meta_type.__name__}")
        return str(meta.id)

    return id_of


def _benchmark_id(obj: Any) -> str:
    from ssl_bench.meta import Benchmark

    if not isinstance(obj, Benchmark):
        raise InvalidRegistration(f"registered a {type(obj).__name__}, not a "
                                  "ssl_bench.api.Benchmark")
    return obj.id


def _collect(pm: pluggy.PluginManager, hook_name: str, registry: Registry[Any],
             id_of: Callable[[Any], str]) -> None:
    caller = getattr(pm.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):
        plugin = plugin_display_name(impl.plugin_name)

        def register(obj: Any, _plugin: str = plugin, _name: str = impl.plugin_name) -> None:
            try:
                registry.add(id_of(obj), obj, _plugin, _name)
            except InvalidRegistration as exc:
                _failures.append(LoadFailure(_name, _plugin, str(exc)))

        kwargs = {"register": register}
        try:
            impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
        except Exception as exc:  # a raising hook is one plugin's failure, not the run's
            module = getattr(impl.plugin, "__name__", type(impl.plugin).__module__)
            _failures.append(LoadFailure(
                impl.plugin_name, plugin,
                f"{hook_name} raised " + describe_exception(exc, module.split(".")[0])))


def get_registries() -> Registries:
    """Call the registration hooks of every loaded plugin once and cache the result."""
    global _registries
    if _registries is None:
        from ssl_bench.meta import DatasetMeta, MethodMeta, TaskMeta

        pm = get_plugin_manager()
        regs = Registries(Registry("method"), Registry("dataset"), Registry("task"),
                          Registry("benchmark"))
        _collect(pm, "register_methods", regs.methods, _class_meta_id(MethodMeta))
        _collect(pm, "register_datasets", regs.datasets, _class_meta_id(DatasetMeta))
        _collect(pm, "register_tasks", regs.tasks, _class_meta_id(TaskMeta))
        _collect(pm, "register_benchmarks", regs.benchmarks, _benchmark_id)
        _registries = regs
    return _registries


def resolved_registries() -> Registries:
    """:func:`get_registries` with every class registered by path imported now (commands that
    run code). A class that fails to import or differs from its registration becomes a load
    failure and leaves its registry, as a plugin that fails to import does."""
    regs = get_registries()
    for registry in (regs.methods, regs.datasets, regs.tasks):
        for entry in list(registry):
            if not entry.lazy:
                continue
            try:
                entry.load()
            except LazyLoadError as exc:
                path = getattr(entry.registered, "path", "?")
                failure = LoadFailure(entry.plugin_name, entry.plugin,
                                      f"{registry.kind} {entry.id!r} ({path}): {exc}")
                if failure not in _failures:
                    _failures.append(failure)
                registry.discard(entry.id)
    return regs


def load_failure_lines() -> list[str]:
    """One warning line per plugin that failed to load or register something."""
    get_registries()
    return [f"plugin {f.name!r} ({f.distribution}) failed to load: {f.error}; fix or reinstall "
            "it, or exclude it with SSL_BENCH_DISABLE_PLUGINS" for f in _failures]


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
    """Plugins that failed to import, or registered something invalid."""
    get_registries()
    return list(_failures)
