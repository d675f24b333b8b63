"""The LaTeX leaderboard: one ``table`` float per board table, ready to paste into a paper.

Each float has a caption (benchmark, task, main score and its direction, label settings, the
number of seeds, "synthetic data" when any record is synthetic, the split reason), a
``\\label`` derived from the benchmark id (``tab:<benchmark>``, ``tab:<benchmark>-2`` for a
second table), booktabs rules (``\\toprule``, ``\\midrule``, ``\\cmidrule``, ``\\bottomrule``),
the best mean per label setting in bold, ``*`` on each significant difference and a table note
under the tabular that says what ``*`` means (the bootstrap, the 0.05 level and the Holm family:
the other rows compared with the same baseline in the same label setting). The number of seeds
is in the caption, not in every cell; a cell with another number of seeds says so. The file
needs only ``\\usepackage{booktabs}`` (named in its first line).

Which columns appear is chosen with :data:`LATEX_COLUMNS` (``ssl-bench leaderboard
--latex-columns``); the per-label-setting ones repeat under each label setting's heading.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from ssl_bench.board import BoardTable, LabelColumn, Stat, Summary
from ssl_bench.errors import SSLBenchError
from ssl_bench.leaderboard_text import environment_text, health_text, provenance, title

#: the columns ``--latex-columns`` can pick, and what each shows
LATEX_COLUMNS: dict[str, str] = {
    "rank": "mean rank over the label settings",
    "method": "the method id (and its row note)",
    "score": "mean ± std over seeds, per label setting (bold: best)",
    "ci": "95% CI of the mean, per label setting",
    "delta": "difference to each baseline, * when significant, per label setting",
    "delta-ci": "95% CI of that difference, per label setting and baseline",
    "p": "Holm-adjusted p-value against each baseline, per label setting",
    "rank-ci": "95% rank interval, per label setting",
    "health": "the encoder's embedding std, RankMe and pretraining loss",
}
DEFAULT_LATEX_COLUMNS: tuple[str, ...] = ("rank", "method", "score", "delta")
#: columns repeated under every label setting (the others appear once per row)
_PER_SETTING = ("score", "ci", "delta", "delta-ci", "p", "rank-ci")
_PER_BASELINE = ("delta", "delta-ci", "p")

_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#",
            "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
            "^": r"\textasciicircum{}", "±": r"$\pm$", "–": "--", "—": "---",
            "Δ": r"$\Delta$", "→": r"$\to$", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
            "×": r"$\times$", "√": r"$\surd$", "²": r"$^2$", "⚠": "(!)", "≥": r"$\geq$",
            "≤": r"$\leq$", "<": r"\textless{}", ">": r"\textgreater{}"}


def latex_escape(text: str) -> str:
    """``text`` as LaTeX source that prints it: special characters escaped one character at
    a time (so an escape is never escaped again) and the symbols the board uses as math."""
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def parse_latex_columns(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """The columns of ``--latex-columns`` (comma-separated or a list), in the order given;
    None gives :data:`DEFAULT_LATEX_COLUMNS`. Raises on an unknown name or without ``method``."""
    if text is None:
        return DEFAULT_LATEX_COLUMNS
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(dict.fromkeys(i.strip() for i in items if i.strip()))
    unknown = [n for n in names if n not in LATEX_COLUMNS]
    if unknown:
        raise SSLBenchError(f"--latex-columns: unknown column {', '.join(unknown)}; choose from "
                            f"{', '.join(LATEX_COLUMNS)}")
    if "method" not in names:
        raise SSLBenchError(f"--latex-columns {','.join(names)}: the table needs the method "
                            "column; add `method`")
    return names


def table_labels(tables: list[BoardTable]) -> list[str]:
    """One ``\\label`` per table: ``tab:<benchmark>`` and ``tab:<benchmark>-<n>`` for the n-th
    table of a benchmark (characters outside letters, digits, ``-``, ``.`` and ``:`` become
    ``-``)."""
    labels = []
    seen: Counter[str] = Counter()
    for t in tables:
        seen[t.benchmark] += 1
        slug = re.sub(r"[^A-Za-z0-9.:-]", "-", t.benchmark)
        n = seen[t.benchmark]
        labels.append(f"tab:{slug}" if n == 1 else f"tab:{slug}-{n}")
    return labels


def common_seeds(t: BoardTable) -> int:
    """The number of seeds most scored cells of the table have (0 when none is scored)."""
    counts = Counter(s.n for s in t.cells.values() if s.n)
    if not counts:
        return 0
    return max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]


def _cell(stat: Stat | None, n_common: int) -> str:
    """``70.00 ± 2.00``; the seed count only when it differs from the caption's."""
    if stat is None:
        return "--"
    if stat.status == "n/a":
        return "n/a"
    if stat.n == 0:
        return f"failed ({stat.failed})"
    text = f"{stat.mean:.2f}" if stat.n == 1 else f"{stat.mean:.2f} ± {stat.std:.2f}"
    if stat.n != n_common:
        text += f" (n={stat.n})"
    if stat.failed:
        text += f" +{stat.failed} failed"
    return latex_escape(text)


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def caption(t: BoardTable) -> str:
    """The caption's text (LaTeX source)."""
    arrow = "higher is better" if t.higher_is_better else "lower is better"
    n = common_seeds(t)
    seeds = f"mean ± std over {n} seed{'' if n == 1 else 's'}" if n else "no scored cells"
    settings = ", ".join(c.header for c in t.columns)
    text = (f"{t.benchmark}: {t.task} ({t.protocol}) on {t.dataset}; {t.main_score} ({arrow}); "
            f"labels: {settings}; {seeds}")
    if t.split:
        text += f"; {t.split}"
    if t.synthetic:
        text += "; synthetic data: the numbers test the pipeline, not the methods"
    return latex_escape(text + ".")


def significance_note(t: BoardTable) -> str:
    """The table note on ``*`` (LaTeX source; "" when the table has no statistics)."""
    if not t.baselines:
        return ""
    families = ", ".join(t.baselines)
    return (r"$^{*}$ " + latex_escape(
        "significant at 0.05: paired hierarchical bootstrap over seeds and test units against "
        "the baseline row, p-value Holm-adjusted over the other rows compared with the same "
        f"baseline in the same label setting (one family per baseline and label setting; "
        f"baselines: {families})."))


def _setting_columns(t: BoardTable, chosen: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """The sub-columns under one label setting: (kind, baseline or None)."""
    out: list[tuple[str, str | None]] = []
    for name in chosen:
        if name not in _PER_SETTING:
            continue
        if name in _PER_BASELINE:
            out += [(name, b) for b in t.baselines]
        elif name == "rank-ci":
            if t.baselines:
                out.append((name, None))
        else:
            out.append((name, None))
    return out


def _sub_header(kind: str, baseline: str | None) -> str:
    names = {"score": "mean ± std", "ci": "95% CI", "delta": f"Δ vs {baseline}",
             "delta-ci": f"Δ vs {baseline} 95% CI", "p": f"p vs {baseline}",
             "rank-ci": "rank 95%"}
    return latex_escape(names[kind])


def _sub_cell(t: BoardTable, m: str, col: LabelColumn, kind: str, baseline: str | None,
              n_common: int) -> str:
    stat = t.cells.get((m, col))
    if kind == "score":
        text = _cell(stat, n_common)
        return f"\\textbf{{{text}}}" if m in t.best(col) else text
    if kind == "ci":
        ci = stat.ci if stat is not None else None
        return latex_escape(f"[{ci[0]:.2f}, {ci[1]:.2f}]") if ci else ""
    if kind == "rank-ci":
        ranked = t.rank_comparison(m, col)
        return latex_escape(f"{ranked.rank_low:g}–{ranked.rank_high:g}") if ranked else ""
    comp = t.comparison(m, col, baseline)
    if comp is None:
        return ""
    if m == comp.baseline:
        return "baseline" if kind == "delta" else ""
    if kind == "delta":
        return latex_escape(f"{comp.delta:+.2f}") + ("$^{*}$" if comp.significant else "")
    if kind == "delta-ci":
        return latex_escape(f"[{comp.ci_low:+.2f}, {comp.ci_high:+.2f}]")
    return latex_escape(_p(comp.p_holm))


def _render_table(t: BoardTable, label: str, chosen: tuple[str, ...]) -> list[str]:
    n_common = common_seeds(t)
    sub = _setting_columns(t, chosen)
    lead = [c for c in chosen if c in ("rank", "method")]
    tail = [c for c in chosen if c == "health"]
    n_cols = len(lead) + len(sub) * len(t.columns) + len(tail)
    align = "".join("r" if c == "rank" else "l" for c in lead)
    align += "r" * (len(sub) * len(t.columns)) + "l" * len(tail)
    out = [f"% {latex_escape(title(t))}", f"% {latex_escape(provenance(t))}",
           f"% {latex_escape(environment_text(t))}",
           "\\begin{table}[htbp]", "\\centering", f"\\caption{{{caption(t)}}}",
           f"\\label{{{label}}}", f"\\begin{{tabular}}{{{align}}}", "\\toprule"]
    first = [""] * len(lead)
    rules = []
    for i, col in enumerate(t.columns):
        if not sub:
            continue
        start = len(lead) + i * len(sub) + 1
        first.append(f"\\multicolumn{{{len(sub)}}}{{c}}{{{latex_escape(col.header)}}}")
        rules.append(f"\\cmidrule(lr){{{start}-{start + len(sub) - 1}}}")
    first += [""] * len(tail)
    if sub:
        out += [" & ".join(first) + r" \\", " ".join(rules)]
    names = {"rank": "Rank", "method": "Method", "health": "Health"}
    second = [names[c] for c in lead]
    second += [_sub_header(kind, b) for _ in t.columns for kind, b in sub]
    second += [names[c] for c in tail]
    out += [" & ".join(second) + r" \\", "\\midrule"]
    for m in t.methods:
        row = []
        for c in lead:
            if c == "rank":
                rank = t.ranks[m]
                row.append(f"{rank:.1f}" if rank is not None else "--")
            else:
                note = f" ({t.notes[m]})" if t.notes.get(m) else ""
                row.append(latex_escape(m + note + (" (collapsed)" if t.collapsed(m) else "")))
        row += [_sub_cell(t, m, col, kind, b, n_common) for col in t.columns for kind, b in sub]
        row += [latex_escape(health_text(t.health.get(m))) for _ in tail]
        out.append(" & ".join(row) + r" \\")
    if t.published:
        out.append("\\midrule")
        for p in t.published:
            cells = [""] * n_cols
            where = lead.index("method")
            setting = p.column.header if p.column is not None else "all labels"
            cells[where] = latex_escape(f"{p.method} (published, {setting}, {p.citation})")
            if ("score", None) in sub:  # the value under the first label setting's score
                cells[len(lead) + sub.index(("score", None))] = latex_escape(
                    f"{p.value:.2f} {p.metric}")
            out.append(" & ".join(cells) + r" \\")
    if t.caveat:  # in the table itself, so that it is printed with it
        out += ["\\midrule", f"\\multicolumn{{{n_cols}}}{{l}}{{\\footnotesize "
                f"{latex_escape(t.caveat)}}} \\\\"]
    out += ["\\bottomrule", "\\end{tabular}"]
    notes = [significance_note(t)] if significance_note(t) and "delta" in chosen else []
    notes += [latex_escape(line) for line in ([t.baseline_note] if t.baseline_note else [])]
    notes += [latex_escape(f"{c.header}: {n}") for c, n in sorted(t.stats_notes.items())]
    if t.merged:
        notes.append(latex_escape("Sources: " + "; ".join(
            f"{m}: {t.sources.get(m, '')}" for m in t.methods) + "."))
    if notes:
        out += ["\\par\\smallskip", "{\\footnotesize " + r" \\ ".join(notes) + "}"]
    out += ["\\end{table}", ""]
    return out


def render_latex(tables: list[BoardTable], summary: Summary | None = None,
                 columns: Sequence[str] | str | None = None) -> str:
    """Every table as a ``table`` float (see the module docstring); ``columns``: those of
    :data:`LATEX_COLUMNS` to show, in order (default :data:`DEFAULT_LATEX_COLUMNS`)."""
    chosen = parse_latex_columns(columns)
    out = ["% ssl-bench leaderboard; needs \\usepackage{booktabs}", ""]
    for t, label in zip(tables, table_labels(tables)):
        out += _render_table(t, label, chosen)
    return "\n".join(out)


def render_table_latex(tables: list[BoardTable], index: int,
                       columns: Sequence[str] | str | None = None) -> str:
    """The LaTeX of ``tables[index]`` alone (with the label it has in the whole file)."""
    chosen = parse_latex_columns(columns)
    label = table_labels(tables)[index]
    return "\n".join(["% ssl-bench leaderboard; needs \\usepackage{booktabs}", ""]
                     + _render_table(tables[index], label, chosen))


__all__ = ["DEFAULT_LATEX_COLUMNS", "LATEX_COLUMNS", "caption", "common_seeds", "latex_escape",
           "parse_latex_columns", "render_latex", "render_table_latex", "significance_note",
           "table_labels"]
