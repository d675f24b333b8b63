"""A self-contained static HTML leaderboard: one section per benchmark, sortable columns,
mean ± std with the 95% CI on hover, the label-efficiency plots inlined as data URIs, and
provenance. No network at view time. Every string from records or plugins is escaped.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ssl_bench.leaderboard import BoardTable

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f0f0;cursor:pointer;user-select:none}
td.method{text-align:left}
td.best{font-weight:bold;background:#eef8ee}
td.na{color:#999}
td.failed{color:#b00}
.prov{font-size:0.85em;color:#555}
.synthetic{background:#fff3cd;padding:2px 6px;border-radius:3px}
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


def _image(path: str) -> str:
    p = Path(path)
    if not p.exists():
        return ""
    data = base64.b64encode(p.read_bytes()).decode()
    return f'<img alt="label-efficiency plot" src="data:image/png;base64,{data}">'


def render_page(tables: list["BoardTable"], plots: dict[str, str]) -> str:
    from ssl_bench.leaderboard import _pct, _provenance, _title, cell_text

    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
             '<link rel="icon" href="data:,">',
             "<title>ssl-bench leaderboard</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>ssl-bench leaderboard</h1>",
             "<p>Cells: mean ± sample std over seeds (n); hover for the 95% CI. Click a column "
             "header to sort. Bold: best per column.</p>"]
    nav = " · ".join(f'<a href="#{_e(t.benchmark)}">{_e(t.benchmark)}</a>' for t in tables)
    parts.append(f"<nav>{nav}</nav>")
    for t in tables:
        synth = ' <span class="synthetic">synthetic data</span>' if t.synthetic else ""
        parts.append(f'<section id="{_e(t.benchmark)}"><h2>{_e(_title(t))}{synth}</h2>')
        parts.append(f'<p class="prov">{_e(_provenance(t))}</p>')
        parts.append('<table class="board"><thead><tr><th title="click to sort">rank</th>'
                     '<th title="click to sort">method</th>'
                     + "".join(f'<th title="click to sort">{_e(_pct(f))}</th>' for f in t.fracs)
                     + "</tr></thead><tbody>")
        for m in t.methods:
            rank = t.ranks[m]
            row = [f'<td data-sort="{rank if rank is not None else ""}">'
                   f'{f"{rank:.1f}" if rank is not None else "–"}</td>',
                   f'<td class="method" data-sort="{_e(m)}">{_e(m)}</td>']
            for f in t.fracs:
                stat = t.cells.get((m, f))
                text = cell_text(stat, ci=False)
                klass = []
                if m in t.best(f):
                    klass.append("best")
                if stat is not None and stat.status == "n/a":
                    klass.append("na")
                if stat is not None and stat.status == "failed":
                    klass.append("failed")
                ci = stat.ci if stat is not None else None
                title = f"95% CI [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "CI needs 2+ seeds"
                sort = f"{stat.mean:.6f}" if stat is not None and stat.n and not math.isnan(
                    stat.mean) else ""
                row.append(f'<td class="{" ".join(klass)}" title="{_e(title)}" '
                           f'data-sort="{sort}">{_e(text)}</td>')
            parts.append("<tr>" + "".join(row) + "</tr>")
        parts.append("</tbody></table>")
        if t.benchmark in plots:
            parts.append(_image(plots[t.benchmark]))
        parts.append("</section>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"
