"""docs/cli.md is generated from the click commands and must not drift from them."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from ssl_bench.cli import cli
from ssl_bench.docs_cli import HELP_WIDTH, main, render_cli_reference

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _help_blocks(markdown: str) -> dict[str, str]:
    """``## `command path``` -> the text of the ```text block under it."""
    blocks: dict[str, str] = {}
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("## `") and line.endswith("`"):
            start = lines.index("```text", i) + 1
            end = lines.index("```", start)
            blocks[line[4:-1]] = "\n".join(lines[start:end])
    return blocks


def test_docs_cli_md_matches_the_generator() -> None:
    committed = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert committed == render_cli_reference(), (
        "docs/cli.md differs from the click commands; regenerate it with "
        "`.venv/bin/python -m ssl_bench.docs_cli`")


def test_every_command_has_a_section_equal_to_its_real_help_output() -> None:
    blocks = _help_blocks(render_cli_reference())
    expected = {"ssl-bench", "ssl-bench run", "ssl-bench list", "ssl-bench plugins",
                "ssl-bench leaderboard", "ssl-bench data", "ssl-bench data synth",
                "ssl-bench data check", "ssl-bench data prepare", "ssl-bench data info"}
    assert expected <= set(blocks)
    runner = CliRunner()
    for path, text in blocks.items():
        args = path.split()[1:] + ["--help"]
        result = runner.invoke(cli, args, prog_name="ssl-bench", terminal_width=HELP_WIDTH)
        assert result.exit_code == 0, result.output
        assert result.output.rstrip() == text, f"section for {path!r} != `{path} --help`"


def test_the_check_flag_fails_on_a_stale_page_and_passes_on_a_fresh_one(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    runner = CliRunner()
    assert runner.invoke(main, ["--out", str(out)]).exit_code == 0
    assert runner.invoke(main, ["--out", str(out), "--check"]).exit_code == 0
    out.write_text(out.read_text(encoding="utf-8").replace("--label-frac", "--label-fraction"),
                   encoding="utf-8")
    stale = runner.invoke(main, ["--out", str(out), "--check"])
    assert stale.exit_code == 1 and "stale" in stale.output


def test_a_new_option_changes_the_generated_page() -> None:
    @click.group()
    def root() -> None:
        """Root."""

    @root.command()
    @click.option("--alpha", help="First.")
    def sub(alpha: str) -> None:
        """Sub."""

    before = render_cli_reference(root, prog_name="tool")
    sub.params.append(click.Option(["--beta"], help="Second."))
    after = render_cli_reference(root, prog_name="tool")
    assert "Second." not in before and "--beta TEXT   Second." in after
    assert "## `tool sub`" in after
