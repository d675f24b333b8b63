"""Boards merged from several sources: results folders and result bundles.

Each source's records are read (a bundle through :func:`ssl_bench.bundle.read_bundle`, which
checks it and writes nothing) and named by the path given. The merged records go through the
ordinary table building, which ranks cells together only when their identity matches on
everything but the machine (benchmark, protocol, profile, data fingerprint, task config and
versions; method configs and label subsets are checked there) and otherwise splits the table
and says why. A cell present in two sources (same benchmark, method, method config, label
setting, seed and partition) is counted once, from the first source that has it, and the two
scores are compared: each row names the sources of its own cells (those in its table) and,
where they were duplicated, how far apart their scores were. A row with cells that a passed
verification in their bundle re-ran with a match (:func:`ssl_bench.verify.verified_records`)
says so in its row note (``verified: 2 cells re-run``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ssl_bench.board import BoardTable, column_of, partition_key
from ssl_bench.errors import SSLBenchError
from ssl_bench.records import CellRecord, iter_records, record_path


@dataclass(frozen=True)
class Duplicate:
    """One cell found in two or more sources, with each source's main score."""

    benchmark: str
    method: str
    setting: str
    seed: int
    sources: tuple[str, ...]
    scores: tuple[float | None, ...]

    @property
    def max_abs_delta(self) -> float | None:
        """The largest difference between the sources' scores (None when one is missing)."""
        if any(s is None for s in self.scores):
            return None
        values = [float(s) for s in self.scores if s is not None]
        return max(values) - min(values)


@dataclass
class MergedRecords:
    records: list[CellRecord]
    #: per cell (:func:`cell_key`), every source that holds it with its record, in the order
    #: the sources were given
    found: dict[tuple[object, ...], list[tuple[str, CellRecord]]]
    names: list[str]
    #: the cells (:func:`cell_key`) whose kept record a passed verification re-ran
    verified: set[tuple[object, ...]] = field(default_factory=set)

    @property
    def duplicates(self) -> list[Duplicate]:
        """The cells found in more than one source."""
        return [_duplicate(found) for found in self.found.values()
                if len({name for name, _ in found}) > 1]


def _duplicate(found: list[tuple[str, CellRecord]]) -> Duplicate:
    r = found[0][1]
    return Duplicate(r.benchmark, r.method.id, column_of(r).setting, r.seed,
                     tuple(name for name, _ in found),
                     tuple(x.main_score if x.status == "ok" else None for _, x in found))


def source_names(paths: list[Path]) -> list[str]:
    """One name per source: its file or folder name, or its whole path where two names
    clash."""
    short = [p.name or str(p) for p in paths]
    return [s if short.count(s) == 1 else str(p) for s, p in zip(short, paths)]


def read_source(path: Path) -> tuple[list[CellRecord], list[str], set[str]]:
    """The records of a results folder or a bundle file, warnings on unreadable files, and
    the record members a passed verification in the bundle re-ran with a match."""
    if path.is_file():
        from ssl_bench.bundle import read_bundle
        from ssl_bench.verify import verified_records

        bundle = read_bundle(path)
        return bundle.records, [], verified_records(bundle)
    if not path.exists():
        raise SSLBenchError(f"results {path} does not exist; pass a results folder or a bundle "
                            "written by `ssl-bench export`")
    records, warnings = iter_records(path)
    return records, warnings, set()


def member_name(r: CellRecord) -> str:
    """The record's path inside a results folder or bundle (``records/...json``)."""
    return record_path(Path("."), r.benchmark, r.method.id, r.label_frac, r.seed,
                       r.label_count if r.label_setting == "count" else None).as_posix()


def cell_key(r: CellRecord) -> tuple[object, ...]:
    """What makes two sources' records the same cell: the table they go to (benchmark,
    protocol, profile, data fingerprint, task config and versions), method and method config,
    label setting and seed."""
    method_config = r.identity.method.config_hash if r.identity else ""
    return (*partition_key(r), r.method.id, method_config, column_of(r), r.seed)


def merge_sources(named: list[tuple[str, list[CellRecord]]],
                  verified: dict[str, set[str]] | None = None) -> MergedRecords:
    """The records of every source, each cell once (from the first source that has it), with
    every source of each cell; ``verified``: per source name, its record members a passed
    verification re-ran. A cell counts as verified when a source that verified it has the
    kept record's score."""
    found: dict[tuple[object, ...], list[tuple[str, CellRecord]]] = defaultdict(list)
    for name, records in named:
        for r in records:
            found[cell_key(r)].append((name, r))
    done = verified or {}
    checked = {key for key, holders in found.items()
               if any(member_name(r) in done.get(name, set())
                      and r.main_score == holders[0][1].main_score for name, r in holders)}
    return MergedRecords([holders[0][1] for holders in found.values()], dict(found),
                         [name for name, _ in named], checked)


def annotate(tables: list[BoardTable], merged: MergedRecords) -> None:
    """Give every row of ``tables`` the sources of its own cells and, where those cells were
    in several sources, their agreement (:attr:`BoardTable.sources`); a row with cells that a
    passed verification re-ran says so in its note."""
    for t in tables:
        t.merged = len(merged.names) > 1
        cells: dict[str, list[list[tuple[str, CellRecord]]]] = defaultdict(list)
        verified: dict[str, int] = defaultdict(int)
        for r in t.records:
            key = cell_key(r)
            cells[r.method.id].append(merged.found.get(key, []))
            verified[r.method.id] += key in merged.verified
        for m in t.methods:
            held = {name for found in cells[m] for name, _ in found}
            text = ", ".join(name for name in merged.names if name in held)
            dups = [_duplicate(found) for found in cells[m]
                    if len({name for name, _ in found}) > 1]
            if dups:
                deltas = [d.max_abs_delta for d in dups]
                known = [x for x in deltas if x is not None]
                spread = f", max |Δ| {max(known):.2f}" if known else ""
                unscored = len(deltas) - len(known)
                text += (f" ({len(dups)} cell{'' if len(dups) == 1 else 's'} in several "
                         f"sources{spread}"
                         + (f", {unscored} not scored in all" if unscored else "") + ")")
            t.sources[m] = text
            n = verified[m]
            if n:
                mark = f"verified: {n} cell{'' if n == 1 else 's'} re-run"
                t.notes[m] = f"{t.notes[m]}; {mark}" if t.notes.get(m) else mark


__all__ = ["Duplicate", "MergedRecords", "annotate", "cell_key", "member_name", "merge_sources",
           "read_source", "source_names"]
