"""Id registries: duplicate ids name both plugins, unknown ids suggest close names.

A duplicate id does not break the registry: it is remembered as a conflict, and only a
command that touches that id (``get``/``entry``/``resolve``) fails, naming both plugins and
the way out (``SSL_BENCH_DISABLE_PLUGINS``).

An entry registered as a :class:`ssl_bench.lazy.LazyClass` keeps its metadata without importing
the class: :attr:`Entry.meta` and :attr:`Entry.profiles` read the registration, and
:attr:`Entry.obj` (or ``get``) imports and checks the class on first use."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Generic, Iterator, TypeVar

from ssl_bench.errors import DuplicateIdError, PluginLoadError, UnknownIdError
from ssl_bench.lazy import LazyClass, LazyLoadError

T = TypeVar("T")


@dataclass(eq=False)
class Entry(Generic[T]):
    """One registered id: what the plugin registered (the object, or a :class:`LazyClass`) and
    the plugin (its distribution) that gave it."""

    id: str
    registered: T | LazyClass
    plugin: str
    kind: str = ""
    #: the plugin's entry-point name (for load-failure lines); the distribution when unknown
    plugin_name: str = ""
    _loaded: T | None = field(default=None, init=False, repr=False)

    @property
    def lazy(self) -> bool:
        """True while the entry is a class registered by path and not yet imported."""
        return isinstance(self.registered, LazyClass) and self._loaded is None

    @property
    def meta(self) -> Any:
        """The registered metadata, without importing a lazily registered class."""
        if isinstance(self.registered, LazyClass):
            return self.registered.meta
        return getattr(self.registered, "meta", None)

    @property
    def profiles(self) -> tuple[str, ...]:
        """The names of the class's budget profiles, without importing a lazy class."""
        if isinstance(self.registered, LazyClass):
            return self.registered.profiles
        return tuple(getattr(self.registered, "profiles", None) or ())

    def load(self) -> T:
        """The registered object; a lazy class is imported and checked the first time
        (:class:`ssl_bench.lazy.LazyLoadError` when that fails)."""
        registered = self.registered
        if not isinstance(registered, LazyClass):
            return registered
        if self._loaded is None:
            self._loaded = registered.load()  # type: ignore[assignment]
        return self._loaded  # type: ignore[return-value]

    @property
    def obj(self) -> T:
        """The registered object; a lazy class that cannot be imported or differs from its
        registration is a one-line :class:`ssl_bench.errors.PluginLoadError`."""
        try:
            return self.load()
        except LazyLoadError as exc:
            path = getattr(self.registered, "path", "?")
            raise PluginLoadError(
                f"plugin {self.plugin!r}: {self.kind} {self.id!r} ({path}): {exc}; fix or "
                f"reinstall the plugin, or exclude it with SSL_BENCH_DISABLE_PLUGINS="
                f"{self.plugin}") from None


class Registry(Generic[T]):
    """Maps ids of one kind ("method", "dataset", ...) to the object and the plugin that gave it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        #: id -> the plugins that registered it (two or more)
        self.conflicts: dict[str, list[str]] = {}

    def add(self, id: str, obj: T | LazyClass, plugin: str, plugin_name: str = "") -> None:
        """Register ``obj`` (or a :class:`LazyClass`) under ``id``; a second registration makes
        ``id`` a conflict."""
        if id in self.conflicts:
            self.conflicts[id].append(plugin)
            return
        if id in self._entries:
            self.conflicts[id] = [self._entries.pop(id).plugin, plugin]
            return
        self._entries[id] = Entry(id, obj, plugin, self.kind, plugin_name or plugin)

    def discard(self, id: str) -> None:
        """Forget ``id`` (a lazy class that failed to import is dropped like a broken plugin)."""
        self._entries.pop(id, None)

    def conflict_message(self, id: str) -> str:
        plugins = " and by plugin ".join(repr(p) for p in self.conflicts[id])
        return (f"{self.kind} id {id!r} is registered twice: by plugin {plugins}; uninstall one "
                "of them or exclude one with SSL_BENCH_DISABLE_PLUGINS=<plugin>")

    def get(self, id: str) -> T:
        return self.entry(id).obj

    def entry(self, id: str) -> Entry[T]:
        if id in self.conflicts:
            raise DuplicateIdError(self.conflict_message(id))
        try:
            return self._entries[id]
        except KeyError:
            raise UnknownIdError(self.unknown_message(id)) from None

    def unknown_message(self, id: str) -> str:
        close = difflib.get_close_matches(id, list(self._entries), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(sorted(self._entries)) or "none"
        return f"unknown {self.kind} {id!r}{hint} (known: {known}; see `ssl-bench list`)"

    def resolve(self, spec: str | None) -> list[str]:
        """Turn ``all`` / ``a,b`` into a list of known ids (unknown ids fail with suggestions)."""
        if spec is None or spec.strip() == "all":
            for id in sorted(self.conflicts):
                raise DuplicateIdError(self.conflict_message(id))
            return sorted(self._entries)
        ids = [part.strip() for part in spec.split(",") if part.strip()]
        if not ids:
            raise UnknownIdError(f"no {self.kind} given; pass `all` or a comma-separated list")
        for id in ids:
            self.entry(id)
        return ids

    def __contains__(self, id: object) -> bool:
        return id in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.id))

    def __len__(self) -> int:
        return len(self._entries)

    def ids(self) -> list[str]:
        return sorted(self._entries)
