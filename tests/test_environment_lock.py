"""The pinned reference environment: requirements-lock.txt pins every dependency, `make` installs
from it, and the environment the tests run in is the locked one."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"lock line {line!r} is not an exact pin"
        pins[name.lower().replace("_", "-")] = version
    return pins


def _declared() -> set[str]:
    names = set()
    pyprojects = [ROOT / "pyproject.toml", *sorted((ROOT / "plugins").glob("*/pyproject.toml"))]
    for pyproject in pyprojects:
        project = tomllib.loads(pyproject.read_text())["project"]
        own = project["name"].lower()
        for req in project.get("dependencies", []) + project.get("optional-dependencies", {}).get(
                "dev", []):
            if _name(req) != "ssl-bench" and _name(req) != own:
                names.add(_name(req))
    return names


def test_lock_pins_every_declared_dependency_exactly() -> None:
    pins = _lock()
    missing = sorted(_declared() - set(pins))
    assert not missing, f"not in requirements-lock.txt: {missing}; run `make lock`"
    assert pins["torch"] and pins["torchvision"]


def test_make_installs_from_the_lock_and_documents_the_refresh() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "-c $(LOCK)" in makefile and "LOCK := requirements-lock.txt" in makefile
    assert "scripts/refresh-lock.sh" in makefile
    assert "make lock" in (ROOT / "requirements-lock.txt").read_text().splitlines()[1]


def test_this_environment_is_the_locked_one() -> None:
    pins = _lock()
    wrong = {}
    for name in sorted(_declared()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong[name] = "not installed"
            continue
        if installed != pins[name]:
            wrong[name] = f"{installed} (lock: {pins[name]})"
    assert not wrong, f"installed versions differ from requirements-lock.txt: {wrong}"
