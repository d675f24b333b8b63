"""Label settings that select the same labelled units are computed once.

Label subsets are a prefix of one ordering of the training units per (dataset, seed), so two
fractions that round to the same number of units select the same units on every seed (the
synthetic suite: 1 %, 5 % and 10 % are one unit on every benchmark; BTCV's 14 training volumes:
one volume for all three). Such cells differ only in their downstream seed, so the run computes
the first setting of each group and gives the others a copy of its record:

- at plan time, :func:`collapse_label_settings` prints one note per benchmark and drops the
  duplicate cells that have no standing record of their own, remembering each in
  ``<results>/label-aliases.json`` (pending copies);
- after the cells, :func:`ssl_bench.label_aliases.write_label_aliases` (called by the
  end-of-run leaderboard writer) copies each computed record to its duplicates' paths.

The leaderboard merges such columns into one (:func:`ssl_bench.board.same_units_groups`), so
the board says "1% = 5% = 10%: 1 unit" whether the duplicates were copied or computed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Callable

from ssl_bench import atomic
from ssl_bench.engine.context import SweepContext
from ssl_bench.engine.identity import Reuse, label_units_for
from ssl_bench.engine.plan import Cell
from ssl_bench.label_aliases import ALIASES_FILE
from ssl_bench.records import record_path


def _setting(cell: Cell) -> str:
    if cell.label_count is not None:
        return f"{cell.label_count} unit" + ("" if cell.label_count == 1 else "s")
    return f"{(cell.label_frac or 0.0) * 100:g}%"


def _order(cell: Cell) -> tuple[int, float]:
    """Counts before fractions, smaller first: the order of the board's columns."""
    if cell.label_count is not None:
        return (0, float(cell.label_count))
    return (1, float(cell.label_frac or 0.0))


def same_units(ctx: SweepContext, cells: list[Cell]) -> dict[Cell, Cell]:
    """Each applicable cell whose labelled units equal those of an earlier label setting of the
    same method, benchmark, seed and kind (fraction or count) -> that earlier cell (the first
    setting of its group). Cells whose units cannot be read (data missing, a broken dataset)
    are left out: they are computed, or fail, as usual."""
    groups: dict[tuple[str, str, int, bool], list[Cell]] = defaultdict(list)
    for cell in cells:
        if cell.applicable:
            groups[(cell.method, cell.benchmark, cell.seed, cell.label_count is None)].append(
                cell)
    duplicates: dict[Cell, Cell] = {}
    for group in groups.values():
        first_of: dict[tuple[str, ...], Cell] = {}
        for cell in sorted(group, key=_order):
            try:
                units = tuple(sorted(u.id for u in label_units_for(ctx, cell)))
            except Exception:  # the cell records its own failure when it runs
                continue
            if not units:
                continue
            if units in first_of:
                duplicates[cell] = first_of[units]
            else:
                first_of[units] = cell
    return duplicates


def collapse_label_settings(ctx: SweepContext, cells: list[Cell], reuse: Mapping[Cell, Reuse],
                            log: Callable[[str], None]) -> list[Cell]:
    """``cells`` without the duplicates (:func:`same_units`) that have no reusable record, after
    one note per benchmark naming the settings computed once; the dropped cells are written to
    ``<results>/label-aliases.json`` (not on a dry run) for
    :func:`ssl_bench.label_aliases.write_label_aliases`."""
    duplicates = same_units(ctx, cells)
    pending_file = Path(ctx.options.results) / ALIASES_FILE
    if not ctx.options.dry_run:  # copies planned by an earlier run are not this run's
        pending_file.unlink(missing_ok=True)
    if not duplicates:
        return cells
    merged: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    sizes: dict[tuple[str, str], int] = {}
    for dup, first in sorted(duplicates.items(), key=lambda kv: _order(kv[0])):
        names = merged[first.benchmark][_setting(first)]
        if _setting(dup) not in names:
            names.append(_setting(dup))
        sizes[(first.benchmark, _setting(first))] = len(label_units_for(ctx, first))
    for bench, groups in sorted(merged.items()):
        parts = []
        for head, others in groups.items():
            n = sizes[(bench, head)]
            parts.append(f"{' = '.join([head, *others])} ({n} unit{'' if n == 1 else 's'})")
        log(f"note: {bench}: label settings {'; '.join(parts)} select the same labelled units: "
            "each group is computed once, at its first setting, and the others get a copy of "
            "its records")
    dropped = {c: f for c, f in duplicates.items() if not reuse[c].reusable}
    if dropped and not ctx.options.dry_run:
        results = Path(ctx.options.results)
        pending = [{"source": _relative(results, first), "target": _relative(results, dup),
                    "label_frac": dup.label_frac, "label_count": dup.label_count}
                   for dup, first in sorted(dropped.items(), key=lambda kv: kv[0].key)]
        atomic.write_json(pending_file, {"aliases": pending})
    return [c for c in cells if c not in dropped]


def _relative(results: Path, cell: Cell) -> str:
    path = record_path(results, cell.benchmark, cell.method, cell.label_frac, cell.seed,
                       cell.label_count)
    return path.relative_to(results).as_posix()


__all__ = ["collapse_label_settings", "same_units"]
