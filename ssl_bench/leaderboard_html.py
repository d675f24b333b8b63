"""A self-contained static HTML leaderboard: one section per table, sortable columns, mean ±
std with the 95% CI on hover, the paired difference to the baseline with its CI, Holm p-value
and significance mark, rank intervals, encoder health (collapsed encoders flagged), published
rows, method names linking to their paper and plugin, the forest plot (one label setting) or
label-efficiency curves (several) and the critical-difference diagram inlined as data URIs,
and provenance. No network at view time. Every string from records or plugins is escaped.

Each section's id is its benchmark (``<benchmark>-2`` for a second table of it), so a link to
``leaderboard.html#cholec80-phase`` stays valid when benchmarks are added, and its heading
carries that permalink. With ``downloads`` each section links to its table's own csv and tex
files, written beside the page (:func:`ssl_bench.leaderboard.write_table_downloads`).
"""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path

from ssl_bench.board import BoardTable, Summary
from ssl_bench.leaderboard_plots import plot_kind
from ssl_bench.leaderboard_text import (
    cell_text,
    delta_text,
    environment_text,
    health_text,
    provenance,
    published_value_text,
    rank_interval_text,
    table_notes,
    title,
)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f0f0;cursor:pointer;user-select:none}
td.method{text-align:left}
td.best{font-weight:bold;background:#eef8ee}
td.na{color:#999}
td.failed{color:#b00}
td.sig{font-weight:bold;color:#064}
td.collapsed,span.collapsed{color:#b00;font-weight:bold}
tr.published td{color:#555;font-style:italic;background:#f8f8f8}
tr.baseline td.method{text-decoration:underline}
.prov{font-size:0.85em;color:#555}
.caveat{font-weight:bold;color:#8a4b00}
.synthetic{background:#fff3cd;padding:2px 6px;border-radius:3px}
a.permalink{color:#999;text-decoration:none;margin-left:0.3em}
img{max-width:640px}
th[data-order=asc]::after{content:" \\25B2"}
th[data-order=desc]::after{content:" \\25BC"}
"""

# Nothing may be fetched at view time: only inline styles/scripts and data: images are allowed,
# so a page that tried to load anything from the network or disk would log a console error.
_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'")

_SCRIPT = """
document.querySelectorAll('table.board').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var asc = th.getAttribute('data-order') !== 'asc';
      table.querySelectorAll('th').forEach(function(h){
        h.removeAttribute('data-order'); h.removeAttribute('aria-sort');
      });
      th.setAttribute('data-order', asc ? 'asc' : 'desc');
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      rows.sort(function(a, b){
        var x = a.cells[col].getAttribute('data-sort'), y = b.cells[col].getAttribute('data-sort');
        var nx = parseFloat(x), ny = parseFloat(y);
        if (isNaN(nx) && isNaN(ny)) { return asc ? x.localeCompare(y) : y.localeCompare(x); }
        if (isNaN(nx)) { return 1; }
        if (isNaN(ny)) { return -1; }
        return asc ? nx - ny : ny - nx;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def table_slugs(tables: list[BoardTable]) -> list[str]:
    """One file-name- and anchor-safe name per table: ``<benchmark>`` for the first table of a
    benchmark, ``<benchmark>-<n>`` for its n-th (characters outside letters, digits, ``.``,
    ``_`` and ``-`` become ``_``)."""
    slugs: list[str] = []
    seen: dict[str, int] = {}
    for t in tables:
        n = seen.get(t.benchmark, 0)
        seen[t.benchmark] = n + 1
        slug = t.benchmark if n == 0 else f"{t.benchmark}-{n + 1}"
        slugs.append(re.sub(r"[^A-Za-z0-9._-]", "_", slug))
    return slugs


def _image(path: str, alt: str) -> str:
    p = Path(path)
    if not p.exists():
        return ""
    data = base64.b64encode(p.read_bytes()).decode()
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _method_cell(t: BoardTable, m: str) -> str:
    links = t.links.get(m, {})
    name = (f'<a class="paper" href="{_e(links["paper"])}" title="paper / code">{_e(m)}</a>'
            if "paper" in links else _e(m))
    extra = ""
    if "plugin" in links:
        extra += f' <a class="plugin" href="{_e(links["plugin"])}" title="plugin">[plugin]</a>'
    if t.notes.get(m):
        extra += f" <small>({_e(t.notes[m])})</small>"
    if t.collapsed(m):
        extra += ' <span class="collapsed" title="encoder collapsed (health check)">⚠</span>'
    return f'<td class="method" data-sort="{_e(m)}">{name}{extra}</td>'


def _table(t: BoardTable) -> list[str]:
    baselines = t.baselines
    head = ['<th title="click to sort">rank</th>', '<th title="click to sort">method</th>']
    if t.merged:
        head.append('<th title="the results folders or bundles of the row">source</th>')
    for col in t.columns:
        head.append(f'<th title="click to sort">{_e(col.header)}</th>')
        for b in baselines:
            head.append(f'<th title="paired difference to {_e(b)}, 95% CI, p Holm-adjusted '
                        f'over the other rows compared with {_e(b)}; * significant at 0.05">'
                        f'Δ vs {_e(b)} ({_e(col.header)})</th>')
        if baselines:
            head.append(f'<th title="95% rank interval (bootstrap)">rank 95% '
                        f'({_e(col.header)})</th>')
    head.append('<th title="embedding std (x sqrt d), RankMe, pretraining loss">health</th>')
    out = ['<table class="board"><thead><tr>' + "".join(head) + "</tr></thead><tbody>"]
    for m in t.methods:
        rank = t.ranks[m]
        row = [f'<td data-sort="{rank if rank is not None else ""}">'
               f'{f"{rank:.1f}" if rank is not None else "–"}</td>', _method_cell(t, m)]
        if t.merged:
            source = t.sources.get(m, "")
            row.append(f'<td class="method" data-sort="{_e(source)}">{_e(source)}</td>')
        for col in t.columns:
            stat = t.cells.get((m, col))
            text = cell_text(stat, ci=False)
            klass = []
            if m in t.best(col):
                klass.append("best")
            if stat is not None and stat.status == "n/a":
                klass.append("na")
            if stat is not None and stat.status == "failed":
                klass.append("failed")
            ci = stat.ci if stat is not None else None
            tip = f"95% CI [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "CI needs 2+ seeds"
            sort = f"{stat.mean:.6f}" if stat is not None and stat.n and not math.isnan(
                stat.mean) else ""
            row.append(f'<td class="{" ".join(klass)}" title="{_e(tip)}" '
                       f'data-sort="{sort}">{_e(text)}</td>')
            for b in baselines:
                comp = t.comparison(m, col, b)
                d_sort = f"{comp.delta:.6f}" if comp is not None else ""
                sig = " sig" if comp is not None and comp.significant else ""
                row.append(f'<td class="delta{sig}" data-sort="{d_sort}">'
                           f'{_e(delta_text(t, m, col, b))}</td>')
            if baselines:
                ranked = t.rank_comparison(m, col)
                row.append(f'<td data-sort="{ranked.rank_low if ranked else ""}">'
                           f'{_e(rank_interval_text(ranked))}</td>')
        health = health_text(t.health.get(m))
        health_class = ' class="collapsed"' if t.collapsed(m) else ""
        row.append(f'<td{health_class} data-sort="{_e(health)}">{_e(health)}</td>')
        base = ' class="baseline"' if m in baselines else ""
        out.append(f"<tr{base}>" + "".join(row) + "</tr>")
    out.append("</tbody></table>")
    if t.published:
        out.append('<table class="published"><thead><tr><th>published</th><th>backbone</th>'
                   '<th>labels</th><th>value</th><th>source</th></tr></thead><tbody>')
        for p in t.published:
            source = (f'<a href="{_e(p.url)}">{_e(p.citation)}</a>' if p.url
                      else _e(p.citation))
            note = f" ({_e(p.note)})" if p.note else ""
            out.append(f'<tr class="published"><td class="method">{_e(p.method)} '
                       f'(published)</td><td>{_e(p.backbone)}</td>'
                       f'<td>{_e(published_value_text(t, p.column))}</td>'
                       f'<td>{p.value:.2f} {_e(p.metric)}{note}</td><td>{source}</td></tr>')
        out.append("</tbody></table>")
    return out


def render_page(tables: list[BoardTable], plots: dict[int, str],
                summary: Summary | None = None, cd_png: str | None = None,
                downloads: bool = False) -> str:
    """The page; ``plots[i]`` is the figure file of ``tables[i]``; ``downloads``: link each
    section to its table's ``<slug>.csv`` and ``<slug>.tex`` beside the page."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
             '<link rel="icon" href="data:,">',
             "<title>ssl-bench leaderboard</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>ssl-bench leaderboard</h1>",
             "<p>Cells: mean ± sample std over seeds (n); hover for the 95% CI. Δ vs B: "
             "paired difference to baseline row B with its 95% CI from a hierarchical bootstrap "
             "over seeds and test units, p Holm-adjusted over the other rows compared with B; "
             "bold green = significant at 0.05. Health: "
             "embedding std (× √d) and RankMe on val frames; ⚠ = collapsed encoder. Click a "
             "column header to sort. Bold: best per column.</p>"]
    anchors = table_slugs(tables)
    nav = " · ".join(f'<a href="#{_e(a)}">{_e(t.benchmark)}'
                     f'{" [" + _e(t.split) + "]" if t.split else ""}</a>'
                     for a, t in zip(anchors, tables))
    if summary is not None:
        nav += ' · <a href="#summary">summary</a>'
    parts.append(f"<nav>{nav}</nav>")
    for i, t in enumerate(tables):
        badge = ' <span class="synthetic">synthetic data</span>' if t.synthetic else ""
        heading = title(t).replace(" — synthetic data", "")
        link = (f' <a class="permalink" href="#{_e(anchors[i])}" title="permalink to this '
                f'table">#</a>')
        parts.append(f'<section id="{_e(anchors[i])}"><h2>{_e(heading)}{badge}{link}</h2>')
        if downloads:
            parts.append(f'<p class="downloads">download this table: <a href="{_e(anchors[i])}'
                         f'.csv" download>csv</a> · <a href="{_e(anchors[i])}.tex" '
                         f'download>tex</a></p>')
        parts.append(f'<p class="prov">{_e(provenance(t))}</p>')
        parts.append(f'<p class="prov">{_e(environment_text(t))}</p>')
        parts += _table(t)
        if t.caveat:
            parts.append(f'<p class="caveat">{_e(t.caveat)}</p>')
        for note in table_notes(t):
            parts.append(f'<p class="prov">{_e(note)}</p>')
        if i in plots:
            parts.append(_image(plots[i], f"{t.benchmark} {plot_kind(t)} plot"))
        parts.append("</section>")
    if summary is not None:
        parts.append('<section id="summary"><h2>Summary across benchmarks</h2>')
        parts.append("<table><thead><tr><th>method</th><th>mean rank</th><th>95% interval</th>"
                     "</tr></thead><tbody>")
        for m in summary.methods:
            parts.append(f'<tr><td class="method">{_e(m)}</td>'
                         f"<td>{summary.mean_rank[m]:.2f}</td><td>{summary.rank_low[m]:.2f}–"
                         f"{summary.rank_high[m]:.2f}</td></tr>")
        parts.append("</tbody></table>")
        if summary.friedman_statistic is not None and summary.friedman_p is not None:
            parts.append(f"<p>Friedman test: chi² = {summary.friedman_statistic:.2f}, p = "
                         f"{summary.friedman_p:.3g}.</p>")
        else:
            parts.append(f"<p>Friedman test: {_e(summary.friedman_note)}.</p>")
        if summary.critical_difference is not None:
            parts.append(f"<p>Nemenyi critical difference (0.05): "
                         f"{summary.critical_difference:.2f} ranks.</p>")
        if cd_png:
            parts.append(_image(cd_png, "critical-difference diagram"))
        parts.append("</section>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"
