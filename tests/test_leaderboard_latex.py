"""The LaTeX tables for a paper and the HTML page's per-table downloads and permalinks.

No LaTeX engine is installed on the test machines, so the structure is checked instead of
compiled: balanced groups and environments, booktabs rules in order, one caption and one unique
label per float, every tabular row with as many cells as the column specification, the
significance note, bold best, the number of seeds in the caption and not in the cells. Where
``pdflatex`` is on the PATH the file is compiled too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from ssl_bench.board import build_tables
from ssl_bench.cli import cli
from ssl_bench.errors import SSLBenchError
from ssl_bench.leaderboard_latex import latex_escape, parse_latex_columns, render_latex
from ssl_bench.records import CellRecord, write_record
from ssl_bench.testing import score_record
from ssl_bench.unit_scores import mean_parts

UNITS = ("u1", "u2", "u3", "u4")
#: method -> score per seed; good beats random-init on every seed (significant)
SCORES = {"random-init": (50.0, 51.0, 52.0), "good": (70.0, 71.0, 72.0),
          "bad_method": (40.0, 41.0, 42.0)}


def _record(method: str, seed: int, score: float, frac: float, bench: str = "b1"
            ) -> CellRecord:
    rec = score_record(method, seed, score, label_frac=frac, benchmark=bench)
    spread = {u: score + (i - 1.5) * 0.5 for i, u in enumerate(UNITS)}
    parts = mean_parts(spread)
    rec.main_score = parts.value()
    rec.metrics = {"acc": parts.value()}
    rec.main_parts = parts.to_json()
    rec.checkpoint = f"ck-{method}-{seed}"
    rec.label_units = [f"L{seed}", f"L{seed}-{frac}"]
    return rec


def _records(fracs: tuple[float, ...] = (0.01, 0.1), benches: tuple[str, ...] = ("b1",)
             ) -> list[CellRecord]:
    return [_record(m, s, v + 5 * j, f, b) for b in benches for m, scores in SCORES.items()
            for s, v in enumerate(scores) for j, f in enumerate(fracs)]


def _strip_comments(tex: str) -> str:
    return "\n".join(re.sub(r"(?<!\\)%.*$", "", line) for line in tex.splitlines())


def check_structure(tex: str) -> list[str]:
    """Problems with the LaTeX source ``tex`` (empty when it is well formed)."""
    problems = []
    body = _strip_comments(tex)
    depth = 0
    for ch, prev in zip(body, " " + body):
        if prev == "\\":
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            problems.append("a } closes nothing")
            depth = 0
    if depth:
        problems.append(f"{depth} unclosed {{")
    stack: list[str] = []
    for kind, name in re.findall(r"\\(begin|end)\{(\w+)\}", body):
        if kind == "begin":
            stack.append(name)
        elif not stack or stack.pop() != name:
            problems.append(f"\\end{{{name}}} does not match")
    if stack:
        problems.append(f"unclosed environments {stack}")
    labels = re.findall(r"\\label\{([^}]*)\}", body)
    if len(labels) != len(set(labels)):
        problems.append(f"duplicate labels {labels}")
    for float_ in re.findall(r"\\begin\{table\}(.*?)\\end\{table\}", body, re.S):
        if float_.count("\\caption{") != 1 or float_.count("\\label{") != 1:
            problems.append("a table float without exactly one caption and one label")
        tabular = re.search(r"\\begin\{tabular\}\{([a-z]+)\}(.*?)\\end\{tabular\}", float_,
                            re.S)
        if tabular is None:
            problems.append("a table float without a tabular")
            continue
        n_cols = len(tabular.group(1))
        rules = [r for r in re.findall(r"\\(toprule|midrule|bottomrule)", tabular.group(2))]
        if rules[:1] != ["toprule"] or rules[-1:] != ["bottomrule"] or "midrule" not in rules:
            problems.append(f"booktabs rules out of order: {rules}")
        for row in re.split(r"\\\\", tabular.group(2)):
            row = re.sub(r"\\(toprule|midrule|bottomrule|cmidrule\(lr\)\{[0-9-]+\})", "", row)
            if not row.strip():
                continue
            span = sum(int(n) for n in re.findall(r"\\multicolumn\{(\d+)\}", row))
            cells = len(re.findall(r"(?<!\\)&", row)) + 1
            width = cells - len(re.findall(r"\\multicolumn", row)) + span
            if width != n_cols:
                problems.append(f"row of {width} cells in a {n_cols}-column tabular: {row!r}")
    return problems


def test_latex_tables_are_floats_with_caption_label_booktabs_and_notes() -> None:
    tables = build_tables(_records(benches=("b1", "b2")), baseline="random-init", n_boot=2000)
    tex = render_latex(tables)
    assert check_structure(tex) == []
    assert "\\usepackage{booktabs}" in tex.splitlines()[0]
    assert re.findall(r"\\label\{([^}]*)\}", tex) == ["tab:b1", "tab:b2"]
    caption = re.search(r"\\caption\{(.*)\}", tex)
    assert caption is not None
    text = caption.group(1)
    assert "b1: t (linear) on d; acc (higher is better)" in text
    assert r"labels: 1\%, 10\%" in text and r"mean $\pm$ std over 3 seeds" in text
    assert "synthetic data" in text
    # n is in the caption, not in the cells
    assert "(n=3)" not in tex
    # bold best per label setting, significance mark and its note on the Holm family
    assert r"\textbf{76.00 $\pm$ 1.00}" in tex and r"\textbf{71.00 $\pm$ 1.00}" in tex
    assert r"+20.00$^{*}$" in tex and r"-10.00$^{*}$" in tex
    assert "Holm-adjusted over the other rows compared with the same baseline" in tex
    # the label settings head their groups of columns; names are escaped
    assert r"\multicolumn{2}{c}{1\%}" in tex and r"\cmidrule(lr){3-4}" in tex
    assert r"bad\_method" in tex


def test_a_cell_with_other_seeds_says_so_and_columns_can_be_picked() -> None:
    records = [r for r in _records(fracs=(0.01,)) if not (r.method.id == "good" and r.seed == 2)]
    tables = build_tables(records, baseline="random-init", n_boot=2000)
    tex = render_latex(tables, columns="method,score,p,health")
    assert check_structure(tex) == []
    assert "(n=2)" in tex and "over 3 seeds" in tex
    assert "Rank" not in tex and "p vs random-init" in tex and "Health" in tex
    assert "$^{*}$" not in tex  # no delta column: no marks, no note about them
    assert re.search(r"\\begin\{tabular\}\{lrrl\}", tex)


def test_latex_columns_are_checked() -> None:
    assert parse_latex_columns(None) == ("rank", "method", "score", "delta")
    assert parse_latex_columns(" method, score ,method") == ("method", "score")
    with pytest.raises(SSLBenchError, match="unknown column bogus"):
        parse_latex_columns("method,bogus")
    with pytest.raises(SSLBenchError, match="add `method`"):
        parse_latex_columns("score")


def test_latex_escape_escapes_each_character_once() -> None:
    assert latex_escape("a\\b{c}_1% & ±") == r"a\textbackslash{}b\{c\}\_1\% \& $\pm$"
    assert check_structure(latex_escape("}{\\%&$#_~^")) == []


def test_cli_latex_columns_and_html_downloads_and_permalinks(tmp_path: Path) -> None:
    results, out = tmp_path / "results", tmp_path / "board"
    for r in _records(benches=("b1", "b2")):
        write_record(results, r)
    args = ["leaderboard", "--results", str(results), "--out", str(out), "--format",
            "html,latex", "--latex-columns", "method,score,delta,delta-ci"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    tex = (out / "leaderboard.tex").read_text(encoding="utf-8")
    assert "Rank" not in tex and r"$\Delta$ vs random-init 95\% CI" in tex
    page = (out / "leaderboard.html").read_text(encoding="utf-8")
    for bench in ("b1", "b2"):
        assert f'<section id="{bench}">' in page and f'href="#{bench}"' in page
        assert f'<a href="{bench}.csv" download>csv</a>' in page
        assert f'<a href="{bench}.tex" download>tex</a>' in page
        table_tex = (out / f"{bench}.tex").read_text(encoding="utf-8")
        assert check_structure(table_tex) == [] and f"\\label{{tab:{bench}}}" in table_tex
        assert "delta_vs_random-init" in (out / f"{bench}.csv").read_text(encoding="utf-8")
    assert CliRunner().invoke(cli, args + ["--check"]).exit_code == 0
    (out / "b2.tex").write_text("edited")
    stale = CliRunner().invoke(cli, args + ["--check"])
    assert stale.exit_code != 0 and "b2.tex" in str(stale.exception)
    assert "--latex-columns method,score,delta,delta-ci" in str(stale.exception)
    bad = CliRunner().invoke(cli, args[:-1] + ["score"])
    assert bad.exit_code != 0 and "add `method`" in str(bad.exception)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex on this machine")
def test_latex_compiles(tmp_path: Path) -> None:
    tables = build_tables(_records(), baseline="random-init", n_boot=2000)
    doc = ("\\documentclass{article}\\usepackage[T1]{fontenc}\\usepackage{booktabs}"
           "\\begin{document}\n" + render_latex(tables) + "\n\\end{document}\n")
    (tmp_path / "t.tex").write_text(doc, encoding="utf-8")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
