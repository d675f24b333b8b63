"""The Markdown docs: every page exists, relative links resolve, and the methods / datasets /
benchmarks pages cover everything the installed plugins register (a new method or dataset
without a docs section fails here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ssl_bench.cli import listing

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ["index.md", "cli.md", "datasets.md", "methods.md", "publishing.md",
         "writing-a-plugin.md", "plugin_hooks.md", "reproducing.md"]
BUILTIN_PLUGINS = {"ssl-bench"}


def _sections(page: str) -> set[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^#{2,3} ([\w.-]+)\s*$", text, re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES)
def test_page_exists_has_a_title_and_its_relative_links_resolve(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    assert text.startswith("# "), f"docs/{page} must start with a '# ' title"
    for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", text):
        assert (DOCS / target).exists(), f"docs/{page} links to missing {target}"
    assert text.count("```") % 2 == 0, f"docs/{page} has an unclosed code fence"


def test_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for page in PAGES:
        if page != "index.md":
            assert f"]({page})" in index, f"docs/index.md does not link {page}"


def test_every_registered_method_has_a_section() -> None:
    sections = _sections("methods.md")
    missing = [m["id"] for m in listing()["methods"] if m["id"] not in sections]
    assert not missing, f"docs/methods.md lacks a '### <id>' section for {missing}"


def test_every_builtin_dataset_has_a_section_with_check_and_licence() -> None:
    text = (DOCS / "datasets.md").read_text(encoding="utf-8")
    sections = _sections("datasets.md")
    for ds in listing()["datasets"]:
        if ds["plugin"] not in BUILTIN_PLUGINS:
            continue
        assert ds["id"] in sections, f"docs/datasets.md lacks a '## {ds['id']}' section"
        body = text.split(f"## {ds['id']}\n", 1)[1].split("\n## ", 1)[0]
        assert f"ssl-bench data check {ds['id']} " in body, f"{ds['id']}: no check example"
        assert "**Licence:**" in body and "**Obtain:**" in body and "**Layout" in body


def test_every_builtin_benchmark_is_named_in_the_docs() -> None:
    text = "".join((DOCS / p).read_text(encoding="utf-8") for p in PAGES)
    for bench in listing()["benchmarks"]:
        if bench["plugin"] in BUILTIN_PLUGINS:
            assert f"`{bench['id']}`" in text, f"benchmark {bench['id']} is not documented"
