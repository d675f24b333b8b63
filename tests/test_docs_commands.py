"""Every ``ssl-bench`` command line in the README's and the docs' code blocks parses with the
real click commands: a flag or a command that does not exist fails the suite."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from ssl_bench.cli import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         *sorted((ROOT / "plugins").glob("*/README.md")), ROOT / "leaderboards" / "README.md",
         *sorted((ROOT / "benchmarks").glob("*/README.md"))]


def _command_lines(page: Path) -> list[tuple[str, str]]:
    """(where, command line) of every ``ssl-bench ...`` line in the page's fenced code blocks,
    continuation lines joined, comments dropped; ``make`` and shell lines are left out."""
    out: list[tuple[str, str]] = []
    in_block = False
    pending = ""
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            continue
        text = pending + line.strip()
        pending = ""
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        text = re.sub(r"\s+#.*$", "", text)  # a trailing comment
        text = text.split(" | ")[0]  # a shell pipe after the command
        match = re.search(r"(?:^|\s|/)ssl-bench (.*)$", text)
        usage = "Usage:" in text or "[OPTIONS]" in text  # click's own usage lines
        if match and not usage and not text.startswith(("#", "pip ", "python ")):
            out.append((f"{page.relative_to(ROOT)}:{number}", match.group(1)))
    return out


CASES = [case for page in PAGES if page.exists() for case in _command_lines(page)]


def _parse(args: list[str]) -> None:
    """Parse ``args`` with the real command tree, as ``ssl-bench`` would, running nothing. A
    group's own options (flags, e.g. ``--debug``) come before its subcommand's name."""
    command: click.Command = cli
    parent: click.Context | None = None
    name = "ssl-bench"
    while isinstance(command, click.Group):
        flags = {opt for param in command.params for opt in param.opts}
        own = 0
        while own < len(args) and args[own] in flags:
            own += 1
        # resilient: a group given no arguments would print its help instead
        ctx = command.make_context(name, args[:own], parent=parent, resilient_parsing=True)
        if own == len(args):
            return
        sub = command.get_command(ctx, args[own])
        assert sub is not None, f"no command {args[own]!r}"
        name, command, parent, args = args[own], sub, ctx, args[own + 1:]
    command.make_context(name, list(args), parent=parent)


def test_the_docs_have_command_lines() -> None:
    assert len(CASES) > 30


@pytest.mark.parametrize(("where", "line"), CASES, ids=[w for w, _ in CASES])
def test_a_documented_command_line_parses(where: str, line: str) -> None:
    args = shlex.split(line)
    if "--help" in args or "-h" in args or "--version" in args:
        return  # click answers these itself
    try:
        _parse(args)
    except click.UsageError as exc:
        pytest.fail(f"{where}: `ssl-bench {line}`: {exc.format_message()}")
