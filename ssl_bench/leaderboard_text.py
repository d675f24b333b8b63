"""Text renderings of the leaderboard: markdown, CSV and JSON, and the cell texts the HTML page
and the LaTeX tables (:mod:`ssl_bench.leaderboard_latex`) share. Every output is a deterministic
function of the tables (no timestamps but the records' own), so ``ssl-bench leaderboard
--check`` can regenerate and compare.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ssl_bench.board import BoardTable, Comparison, LabelColumn, Stat, Summary, round_finite


def cell_text(stat: Stat | None, ci: bool = True) -> str:
    if stat is None:
        return "–"
    if stat.status == "n/a":
        return "n/a"
    if stat.n == 0:
        return f"failed ({stat.failed})"
    if stat.n == 1:  # one seed: no spread to report
        text = f"{stat.mean:.2f} (n=1)"
    else:
        text = f"{stat.mean:.2f} ± {stat.std:.2f} (n={stat.n})"
    interval = stat.ci
    if ci and interval is not None:
        text += f" [{interval[0]:.2f}, {interval[1]:.2f}]"
    if stat.failed:
        text += f" +{stat.failed} failed"
    return text


def delta_text(t: BoardTable, method: str, column: LabelColumn,
               baseline: str | None = None) -> str:
    """``+5.20 [1.10, 9.30] p=0.003 *`` (``*``: Holm-significant at 0.05) against ``baseline``
    (default: the table's first); ``baseline`` in the baseline's own row."""
    comp = t.comparison(method, column, baseline)
    if comp is None:
        return ""
    if method == comp.baseline:
        return "baseline"
    mark = " *" if comp.significant else ""
    return (f"{comp.delta:+.2f} [{comp.ci_low:+.2f}, {comp.ci_high:+.2f}] "
            f"p{_p_text(comp.p_holm)}{mark}")


def _p_text(p: float) -> str:
    """``<0.001`` or ``=0.042`` (to follow a ``p``)."""
    return "<0.001" if p < 0.001 else f"={p:.3f}"


def rank_interval_text(comp: Comparison | None) -> str:
    if comp is None:
        return ""
    return f"{comp.rank_low:g}–{comp.rank_high:g}"


def health_text(health: dict[str, Any] | None) -> str:
    """``std 0.61, RankMe 45.2, loss 4.10→3.20`` and a collapse warning."""
    if not health:
        return ""
    parts = [f"std {health['embedding_std_ratio']:.2f}", f"RankMe {health['rankme']:.1f}"]
    if health.get("loss_first") is not None and health.get("loss_last") is not None:
        parts.append(f"loss {health['loss_first']:.3g}→{health['loss_last']:.3g}")
    text = ", ".join(parts)
    return ("COLLAPSED: " + text) if health.get("collapsed") else text


def method_text(t: BoardTable, method: str) -> str:
    text = method
    if t.notes.get(method):
        text += f" ({t.notes[method]})"
    return text


def title(t: BoardTable) -> str:
    arrow = "↑" if t.higher_is_better else "↓"
    synth = " — synthetic data" if t.synthetic else ""
    split = f" [{t.split}]" if t.split else ""
    return (f"{t.benchmark}: {t.task} ({t.protocol}) on {t.dataset}, main score {t.main_score} "
            f"{arrow}{synth}{split}")


def provenance(t: BoardTable) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in sorted(t.versions.items()))
    return (f"profile: {', '.join(t.profiles)}; synthetic: {str(t.synthetic).lower()}; "
            f"latest record: {t.date}; versions: {versions}")


def environment_text(t: BoardTable) -> str:
    if not t.environments:
        return "environment: not recorded in these records"
    if t.mixed_environment:
        return ("WARNING: this table mixes environments; scores may differ for that reason "
                "alone: " + " | ".join(t.environments))
    return f"environment: {t.environments[0]}"


def table_notes(t: BoardTable) -> list[str]:
    """The statistics notes under a table: the baselines skipped in it and, per column, what
    could not be compared (the shared-pretraining caveat is :attr:`BoardTable.caveat`)."""
    lines = [t.baseline_note] if t.baseline_note else []
    return lines + [f"{col.header}: {note}" for col, note in sorted(t.stats_notes.items())]


def md_cell(text: str) -> str:
    """``text`` as one markdown table cell: a ``|`` in it (a path, ``max |Δ|``) would end the
    cell, so it is escaped."""
    return text.replace("|", "\\|")


def _intro() -> list[str]:
    return ["# ssl-bench leaderboard", "",
            "Cells: mean ± sample std over seeds (n = seeds) [95% CI of the mean]; **bold** = "
            "best per column; rank = mean rank over label settings. Δ vs B: paired difference "
            "to baseline row B [95% CI] from a hierarchical bootstrap over seeds and test "
            "units, p = Holm-adjusted over the other rows compared with B (each baseline is its "
            "own family), * = significant at 0.05; rank 95% = the rank interval from the same "
            "bootstrap (that of the first baseline). Health: the encoder's embedding std "
            "(× √d; about 1 when healthy, 0 when collapsed) and RankMe effective rank on val "
            "frames, and its pretraining loss (first → last 10% of steps). Published rows are "
            "figures from papers, not ranked.", ""]


def render_markdown(tables: list[BoardTable], summary: Summary | None = None,
                    cd_png: str | None = None) -> str:
    lines = _intro()
    for t in tables:
        lines += [f"## {title(t)}", "", provenance(t), "", environment_text(t), ""]
        baselines = t.baselines
        header = ["rank", "method"] + (["source"] if t.merged else [])
        for col in t.columns:
            header.append(col.header)
            if baselines:
                header += [f"Δ vs {b} ({col.header})" for b in baselines]
                header.append(f"rank 95% ({col.header})")
        header.append("health")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] * len(header)) + "|")
        for m in t.methods:
            rank = t.ranks[m]
            row = [f"{rank:.1f}" if rank is not None else "–", method_text(t, m)]
            row += [md_cell(t.sources.get(m, ""))] if t.merged else []
            for col in t.columns:
                text = cell_text(t.cells.get((m, col)))
                row.append(f"**{text}**" if m in t.best(col) else text)
                if baselines:
                    row += [delta_text(t, m, col, b) for b in baselines]
                    row.append(rank_interval_text(t.rank_comparison(m, col)))
            row.append(health_text(t.health.get(m)))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        for note in ([t.caveat] if t.caveat else []) + table_notes(t):
            lines += [note, ""]
        if t.published:
            lines += _markdown_published(t)
    if summary is not None:
        lines += _markdown_summary(summary, cd_png)
    return "\n".join(lines)


def published_value_text(t: BoardTable, column: LabelColumn | None) -> str:
    return column.header if column is not None else "all labels"


def _markdown_published(t: BoardTable) -> list[str]:
    lines = ["Published results (from the papers, for comparison; not ranked):", "",
             "| published | backbone | labels | value | source |", "|---|---|---|---|---|"]
    for p in t.published:
        source = f"[{p.citation}]({p.url})" if p.url else p.citation
        value = f"{p.value:.2f} {p.metric}" + (f" ({p.note})" if p.note else "")
        lines.append(f"| {p.method} (published) | {p.backbone} | "
                     f"{published_value_text(t, p.column)} | {value} | {source} |")
    return lines + [""]


def _markdown_summary(s: Summary, cd_png: str | None) -> list[str]:
    lines = ["## Summary across benchmarks", "",
             f"Mean rank over {', '.join(s.benchmarks)} (first table and label setting of each) "
             "[95% interval from the bootstraps].", "",
             "| method | mean rank | 95% interval |", "|---|---|---|"]
    for m in s.methods:
        lines.append(f"| {m} | {s.mean_rank[m]:.2f} | {s.rank_low[m]:.2f}–{s.rank_high[m]:.2f} |")
    lines.append("")
    if s.friedman_statistic is not None and s.friedman_p is not None:
        lines.append(f"Friedman test: chi² = {s.friedman_statistic:.2f}, p"
                     f"{_p_text(s.friedman_p)} ({len(s.methods)} methods, "
                     f"{len(s.benchmarks)} benchmarks).")
    else:
        lines.append(f"Friedman test: {s.friedman_note}.")
    if s.critical_difference is not None:
        lines.append(f"Nemenyi critical difference (0.05): {s.critical_difference:.2f} ranks"
                     + (f"; diagram: {cd_png}" if cd_png else "") + ".")
    if s.excluded:
        lines.append("Not in every benchmark (left out): " + ", ".join(
            f"{m} (missing from {', '.join(b)})" for m, b in sorted(s.excluded.items())) + ".")
    return lines + [""]


def _rows(tables: list[BoardTable]) -> list[dict[str, Any]]:
    rows = []
    for t in tables:
        for m in t.methods:
            for col in t.columns:
                stat = t.cells.get((m, col))
                if stat is None:
                    continue
                interval = stat.ci
                comps = [c for b in t.baselines if (c := t.comparison(m, col, b)) is not None]
                ranked = t.rank_comparison(m, col)
                health = t.health.get(m) or {}
                rank = t.ranks[m]
                rows.append({
                    "benchmark": t.benchmark, "task": t.task, "protocol": t.protocol,
                    "split": t.split, "method": m, "row_note": t.notes.get(m, ""),
                    "source": t.sources.get(m, ""),
                    "label_setting": col.kind,
                    "label_frac": col.value if col.kind == "frac" else None,
                    "label_count": int(col.value) if col.kind == "count" else None,
                    "label_header": col.header,
                    "metric": t.main_score, "higher_is_better": t.higher_is_better,
                    "status": stat.status,
                    "mean": None if not stat.n else round(stat.mean, 6),
                    "std": None if not stat.n else round(stat.std, 6), "n": stat.n,
                    "ci95_low": None if interval is None else round(interval[0], 6),
                    "ci95_high": None if interval is None else round(interval[1], 6),
                    "failed": stat.failed, "best": m in t.best(col),
                    "rank": None if rank is None else round(rank, 3),
                    "comparisons": [c.as_json() for c in comps],
                    "rank_low": round_finite(ranked.rank_low) if ranked is not None else None,
                    "rank_high": round_finite(ranked.rank_high) if ranked is not None else None,
                    "health": {k: (round_finite(v) if isinstance(v, float) else v)
                               for k, v in health.items()} or None,
                    "collapsed": bool(health.get("collapsed")) if health else None,
                    "synthetic": t.synthetic, "profiles": ",".join(t.profiles),
                    "shared_pretraining": m in t.shared_pretraining, "caveat": t.caveat,
                })
    return rows


#: the CSV columns of one comparison, each suffixed ``_vs_<baseline>``, and their JSON keys
CSV_COMPARISON_FIELDS = (("delta", "mean"), ("delta_ci_low", "ci_low"),
                         ("delta_ci_high", "ci_high"), ("p", "p"), ("p_holm", "p_holm"),
                         ("significant", "significant"))


def render_csv(tables: list[BoardTable], summary: Summary | None = None) -> str:
    """One row per (table, method, label setting); the comparison with each baseline in its
    own columns (``delta_vs_<baseline>``, ``p_holm_vs_<baseline>``, ...), empty where that
    row was not compared with it."""
    import pandas as pd

    baselines = list(dict.fromkeys(b for t in tables for b in t.baselines))
    flat = []
    columns: list[str] = []
    for row in _rows(tables):
        out = {k: v for k, v in row.items() if k not in ("comparisons", "health")}
        by_baseline = {c["baseline"]: c for c in row["comparisons"]}
        for b in baselines:
            comp = by_baseline.get(b, {})
            out.update({f"{name}_vs_{b}": comp.get(key) for name, key in CSV_COMPARISON_FIELDS})
        health = row["health"] or {}
        out.update({"embedding_std_ratio": health.get("embedding_std_ratio"),
                    "rankme": health.get("rankme")})
        columns = columns or list(out)
        flat.append(out)
    return pd.DataFrame(flat, columns=columns or None).to_csv(index=False,
                                                              lineterminator="\n")


def render_json(tables: list[BoardTable], summary: Summary | None = None) -> str:
    data: dict[str, Any] = {"tables": [
        {"benchmark": t.benchmark, "title": title(t), "provenance": provenance(t),
         "split": t.split, "versions": t.versions, "date": t.date,
         "environments": t.environments, "mixed_environment": t.mixed_environment,
         "baseline": t.baseline, "baselines": t.baselines,
         "requested_baselines": list(t.requested_baselines), "baseline_note": t.baseline_note,
         "caveat": t.caveat, "shared_pretraining": t.shared_pretraining,
         "stats_notes": {c.header: n for c, n in sorted(t.stats_notes.items())},
         "published": [{"method": p.method, "value": p.value, "metric": p.metric,
                        "label": published_value_text(t, p.column), "backbone": p.backbone,
                        "citation": p.citation, "url": p.url, "note": p.note}
                       for p in t.published]}
        for t in tables], "rows": _rows(tables)}
    if summary is not None:
        data["summary"] = {
            "benchmarks": summary.benchmarks,
            "methods": [{"method": m, "mean_rank": round_finite(summary.mean_rank[m]),
                         "rank_low": round_finite(summary.rank_low[m]),
                         "rank_high": round_finite(summary.rank_high[m])} for m in summary.methods],
            "friedman": {"statistic": round_finite(summary.friedman_statistic),
                         "p_value": round_finite(summary.friedman_p),
                         "note": summary.friedman_note},
            "critical_difference": round_finite(summary.critical_difference),
            "excluded": {m: list(b) for m, b in summary.excluded.items()},
        }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


__all__ = ["cell_text", "delta_text", "environment_text", "health_text", "md_cell",
           "method_text", "provenance", "rank_interval_text", "render_csv", "render_json",
           "render_markdown", "table_notes", "title"]
