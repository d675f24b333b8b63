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
         "writing-a-plugin.md", "plugin-contract.md", "plugin_hooks.md", "reproducing.md",
         "reliability.md", "cluster.md"]
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


# ---- docs/plugin-contract.md: one section per thing a plugin author must know -------------


def _h2_sections(page: str) -> dict[str, str]:
    """``## heading`` -> the text up to the next ``## `` heading."""
    text = (DOCS / page).read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _testing_helpers() -> list[str]:
    """Every public class, function and constant that ssl_bench.testing defines."""
    import inspect

    import ssl_bench.testing as testing

    names = []
    for name, obj in vars(testing).items():
        if name.startswith("_"):
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if obj.__module__ == testing.__name__:
                names.append(name)
        elif name.isupper():
            names.append(name)
    return sorted(names)


def _health_figures() -> list[str]:
    """The keys of the health figures, from a real measurement of a tiny encoder."""
    import numpy as np
    import torch

    from ssl_bench.engine.health import encoder_health
    from ssl_bench.testing import TinyConvEncoder

    torch.manual_seed(0)
    frames = np.random.default_rng(0).integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)
    return sorted(encoder_health(TinyConvEncoder(), frames, torch.device("cpu"), [1.0, 0.5]))


def _contract_requirements() -> dict[str, list[str]]:
    """Section heading -> strings its text must hold (names taken from the code itself)."""
    from dataclasses import fields

    from ssl_bench.api import DatasetMeta, Unit, UnitData
    from ssl_bench.records import CellIdentity, DatasetIdentity, MethodIdentity, TaskIdentity
    from ssl_bench.synthetic_suite import MARKER

    identity = [f"`{name}`" for model in (CellIdentity, MethodIdentity, TaskIdentity,
                                          DatasetIdentity) for name in model.model_fields]
    return {
        "The Encoder contract": ["finest first", "`channels`", "`strides`", "[0, 1]",
                                 "(B, 3, H, W)", "normalises", "check_encoder", "probe"],
        "Datasets: Unit, UnitData and DatasetMeta": (
            [f"`{f.name}`" for f in fields(Unit)] + [f"`{f.name}`" for f in fields(UnitData)
                                                     if f.name != "unit"]
            + [f"`{name}`" for name in DatasetMeta.model_fields]
            + ["AugmentPolicy", "policy=pool.augment_policy", "Required:", "Optional:"]),
        "Testing a plugin with ssl_bench.testing": (
            [f"`{name}" for name in _testing_helpers()] + ["testing_plugin", "conftest.py"]),
        "Running on your own data": ["--data-root", "<dataset-id>", "ssl-bench data check",
                                     "ssl-bench data prepare", "--benchmarks default",
                                     "skipped benchmark", "choose_benchmarks"],
        "Where the pretraining losses are logged": (
            ["<results>/cache/work_dirs/<method>/<key>/", "scalars.json", "TensorBoard",
             "run_pretraining", "sidecar"] + [f"`{key}`" for key in _health_figures()]),
        "The learning-rate schedule and max_steps": [
            "`warmup_epochs`", "cosine", "per optimiser step", "configure_optimizer",
            "total_steps", "`max_steps`", "`epochs`", "cap"],
        "SSL_BENCH_CACHE and the results cache": [
            "$SSL_BENCH_CACHE", "<results>/cache/", "synthetic/", "data/frames/",
            "data/volumes/", "checkpoints/", "work_dirs/", "features/"],
        "When a data root counts as real data": [MARKER, "resolve_data", "`synthetic`",
                                                 "--data-root"],
        "When a plugin fails": [
            "--strict-plugins", "SSL_BENCH_DISABLE_PLUGINS", "SSL_BENCH_LOAD_PLUGINS",
            "--debug", "duplicate id", "meta", "profile", "optimizer", "configure_optimizer",
            "traceback"],
        "Resume and cell identity": identity + ["superseded", "--dry-run", "CellIdentity",
                                                "source_hash"],
    }


def test_plugin_contract_has_a_section_for_each_thing_an_author_must_know() -> None:
    sections = _h2_sections("plugin-contract.md")
    for heading, required in _contract_requirements().items():
        assert heading in sections, f"docs/plugin-contract.md lacks '## {heading}'"
        missing = [s for s in required if s not in sections[heading]]
        assert not missing, f"docs/plugin-contract.md, '## {heading}' does not mention {missing}"
    from ssl_bench.api import DatasetMeta

    body = sections["Datasets: Unit, UnitData and DatasetMeta"]
    required = body.split("Required:", 1)[1].split("Optional:", 1)[0]
    for name, field in DatasetMeta.model_fields.items():
        assert (f"`{name}`" in required) == field.is_required(), (
            f"docs/plugin-contract.md: DatasetMeta.{name} must be listed under "
            f"{'Required' if field.is_required() else 'Optional'}")


def test_plugin_contract_examples_compile_and_the_pages_link_it() -> None:
    text = (DOCS / "plugin-contract.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 5
    for i, block in enumerate(blocks):
        compile(block, f"docs/plugin-contract.md python block {i + 1}", "exec")
    for page in ("index.md", "writing-a-plugin.md"):
        assert "](plugin-contract.md" in (DOCS / page).read_text(encoding="utf-8"), page


def test_the_plugin_example_passes_the_pool_policy() -> None:
    text = (DOCS / "writing-a-plugin.md").read_text(encoding="utf-8")
    example = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    assert "ssl_augment(" in example and "policy=pool.augment_policy" in example
