"""Id registries: duplicate ids name both plugins, unknown ids suggest close names.

A duplicate id does not break the registry: it is remembered as a conflict, and only a
command that touches that id (``get``/``entry``/``resolve``) fails, naming both plugins and
the way out (``SSL_BENCH_DISABLE_PLUGINS``)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Generic, Iterator, TypeVar

from ssl_bench.errors import DuplicateIdError, UnknownIdError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    id: str
    obj: T
    plugin: str


class Registry(Generic[T]):
    """Maps ids of one kind ("method", "dataset", ...) to the object and the plugin that gave it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        #: id -> the plugins that registered it (two or more)
        self.conflicts: dict[str, list[str]] = {}

    def add(self, id: str, obj: T, plugin: str) -> None:
        """Register ``obj`` under ``id``; a second registration makes ``id`` a conflict."""
        if id in self.conflicts:
            self.conflicts[id].append(plugin)
            return
        if id in self._entries:
            self.conflicts[id] = [self._entries.pop(id).plugin, plugin]
            return
        self._entries[id] = Entry(id, obj, plugin)

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
