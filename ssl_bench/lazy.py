"""Lazy registration: a plugin registers a class by its import path, with the class's metadata,
so that ``ssl-bench --help``, ``list``, ``plugins`` and ``leaderboard`` never import the
plugin's code (and with it torch, timm or MONAI).

::

    from ssl_bench import hookimpl
    from ssl_bench.lazy import LazyClass
    from my_package.metas import MY_METHOD_META  # a module that imports no torch

    @hookimpl
    def register_methods(register):
        register(LazyClass("my_package.method:MyMethod", meta=MY_METHOD_META,
                           profiles=("smoke", "cpu", "paper")))

The registry keeps the reference; listing reads ``meta`` and ``profiles`` from it. The first
command that needs the class (``run``, ``data``) imports it and checks that the class's
``meta`` equals the registered one and that its ``profiles`` have the registered names, so the
listing can never disagree with what runs. The class should take its ``meta`` from the same
light module (``meta = MY_METHOD_META``): one source of truth. A class registered directly
(``register(MyMethod)``) keeps working; it only costs its imports at start-up.

This module imports neither torch nor any plugin code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ssl_bench.errors import describe_exception

#: longest value shown in a mismatch message
_SHOWN = 60


class LazyLoadError(Exception):
    """A lazily registered class cannot be imported or differs from its registration (one line
    without the plugin's name: the registry adds it)."""


@dataclass(frozen=True)
class LazyClass:
    """A class registered by import path ``"package.module:ClassName"``, with the ``meta`` it
    has and the names of its ``profiles`` (methods and tasks; datasets have none)."""

    path: str
    meta: Any
    profiles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        module, sep, name = self.path.partition(":")
        parts = module.split(".")
        if not sep or not name.isidentifier() or not all(p.isidentifier() for p in parts):
            raise ValueError(f"LazyClass path {self.path!r}: use 'package.module:ClassName'")
        if isinstance(self.profiles, str) or not all(isinstance(p, str) for p in self.profiles):
            raise ValueError(f"LazyClass {self.path}: profiles must be a tuple of profile "
                             f"names, e.g. ('smoke', 'cpu', 'paper')")
        object.__setattr__(self, "profiles", tuple(self.profiles))

    @property
    def module(self) -> str:
        return self.path.partition(":")[0]

    @property
    def name(self) -> str:
        return self.path.partition(":")[2]

    def load(self) -> type:
        """Import the class and check it against this registration; :class:`LazyLoadError`
        (one line) when the import fails or the class differs."""
        try:
            module = importlib.import_module(self.module)
        except Exception as exc:  # the plugin's own import error, told in one line
            raise LazyLoadError(f"cannot import {self.module}: "
                                f"{describe_exception(exc, self.module.split('.')[0])}") from exc
        cls = getattr(module, self.name, None)
        if not isinstance(cls, type):
            what = "has no" if cls is None else "has a non-class"
            raise LazyLoadError(f"module {self.module} {what} {self.name!r}; fix the path "
                                f"given to LazyClass")
        difference = meta_difference(self.meta, getattr(cls, "meta", None))
        if difference is None:
            difference = _profiles_difference(self.profiles, getattr(cls, "profiles", None))
        if difference is not None:
            raise LazyLoadError(f"class {self.name} differs from its registration: "
                                f"{difference} (the class should take its meta from the "
                                f"registered object)")
        return cls


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."


def meta_difference(registered: Any, actual: Any) -> str | None:
    """The first field in which ``actual`` differs from ``registered`` (None when equal)."""
    if actual is None:
        return "the class has no `meta`"
    if type(actual) is not type(registered):
        return (f"its meta is a {type(actual).__name__}, the registered one a "
                f"{type(registered).__name__}")
    for name in type(registered).model_fields:
        mine, theirs = getattr(actual, name), getattr(registered, name)
        if mine != theirs:
            return f"field {name!r} is {_shown(mine)} in the class, {_shown(theirs)} registered"
    return None if actual == registered else "its meta differs from the registered one"


def _profiles_difference(registered: tuple[str, ...], actual: Any) -> str | None:
    names = tuple(sorted(actual or ()))
    if names == tuple(sorted(registered)):
        return None
    return f"field 'profiles' is {names!r} in the class, {tuple(sorted(registered))!r} registered"


__all__ = ["LazyClass", "LazyLoadError", "meta_difference"]
