"""The repository stands alone: no tracked text file points to a file outside it (a design or
spec document kept next to the checkout) or to an issue number of a tracker that is not part of
the repository. A fact such a pointer stood for is stated in place, or in a page under docs/."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()

#: Directories that are not the repository's own text: the virtual environment, run outputs,
#: git's metadata and caches.
SKIPPED_DIRS = {".venv", "results", ".git", "__pycache__", ".pytest_cache", ".ruff_cache",
                "node_modules"}

#: What counts as a pointer outside the repository. ``shared/`` only counts as a relative path
#: (``../shared/``, ``shared/specs``) or under ``/work/``: an absolute example path such as a
#: cluster's ``/shared/datasets`` in docs/cluster.md points to nothing of this project's.
OUTSIDE_POINTERS = re.compile(
    r"[Ii]ssues? #?[0-9]+"
    r"|\.\./shared"
    r"|/work/shared"
    r"|(?<![\w/.-])shared/"
    r"|specs/[A-Z]+\.md"
    r"|DESIGN\.md"
    r"|STYLE-ANCHORS"
)


def _tracked_files() -> list[Path]:
    """The files git tracks, or, without git, every file under the root outside SKIPPED_DIRS."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True, timeout=60).stdout
        names = [n for n in out.decode("utf-8", "surrogateescape").split("\0") if n]
    except (OSError, subprocess.SubprocessError):
        names = []
        for dirpath, dirnames, filenames in os.walk(ROOT):
            dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS]
            names += [os.path.relpath(os.path.join(dirpath, f), ROOT) for f in filenames]
    return [ROOT / n for n in names
            if not SKIPPED_DIRS.intersection(Path(n).parts[:-1])]


def _text(path: Path) -> str | None:
    """The file's text, or None for a binary, unreadable or missing (deleted) file."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def find_outside_pointers(paths: list[Path]) -> list[str]:
    """``file:line: text`` for every line of the given files that matches OUTSIDE_POINTERS."""
    hits = []
    for path in paths:
        if path.resolve() == THIS:
            continue  # the patterns above are spelled out here on purpose
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE_POINTERS.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    return hits


def test_the_scan_covers_the_repository() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _tracked_files()}
    assert "README.md" in names and "pyproject.toml" in names
    assert any(n.startswith("ssl_bench/") and n.endswith(".py") for n in names)
    assert not any(n.startswith((".venv/", "results/")) for n in names)


def test_the_patterns_catch_what_they_are_for() -> None:
    for line in ("see ../shared/DESIGN.md", "/work/shared/specs/DATASETS.md section 9",
                 "(specs/METHODS.md)", "misses issue 19's target", "(Issue 15, item 6)",
                 "the anchors (STYLE-ANCHORS)", "shared/specs/x"):
        assert OUTSIDE_POINTERS.search(line), line
    for line in ("--data-root /shared/datasets --results /shared/ssl-bench-results",
                 "the shared-pretraining caveat", "docs/datasets.md", "an issue with it"):
        assert not OUTSIDE_POINTERS.search(line), line


def test_no_tracked_file_points_outside_the_repository() -> None:
    hits = find_outside_pointers(_tracked_files())
    assert not hits, ("pointers to files outside the repository or to issue numbers; state the "
                      "fact in place or point to a page under docs/:\n" + "\n".join(hits))
