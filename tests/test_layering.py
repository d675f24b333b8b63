"""The import graph of ssl_bench has no circles, the engine never imports the CLI, and a module
uses only public names of the others. Imports written anywhere in a module count, inside
functions and ``if TYPE_CHECKING:`` blocks too: a type-only import that closes a circle still
ties the modules of the circle together."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "ssl_bench"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports() -> dict[str, list[tuple[str, list[str]]]]:
    """module -> [(imported ssl_bench module, names taken from it)]."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, list[tuple[str, list[str]]]] = {}
    for name, path in modules.items():
        edges = []
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges += [(a.name, []) for a in node.names if a.name.startswith("ssl_bench")]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                if not base.startswith("ssl_bench"):
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in modules:  # "from ssl_bench.engine import ddp": a module
                        edges.append((sub, []))
                    else:
                        edges.append((base, [alias.name]))
        graph[name] = [(target, names) for target, names in edges if target in modules]
    return graph


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, []):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _plain(graph: dict[str, list[tuple[str, list[str]]]]) -> dict[str, list[str]]:
    # a package's __init__ re-exporting its children is not a circle with them
    return {m: sorted({t for t, _ in edges if not (m and t.startswith(m + ".")
                                                    and m.count(".") < t.count("."))})
            for m, edges in graph.items()}


def test_no_import_circles() -> None:
    cycles = _cycles(_plain(_imports()))
    assert cycles == [], f"import circles: {cycles}"


def test_the_engine_never_imports_the_cli() -> None:
    graph = _imports()
    bad = [(m, t) for m, edges in graph.items() if m.startswith("ssl_bench.engine")
           for t, _ in edges if t == "ssl_bench.cli" or t.startswith("ssl_bench.commands")]
    assert bad == []


def test_only_public_names_cross_modules() -> None:
    graph = _imports()
    private = [(m, t, n) for m, edges in graph.items() for t, names in edges for n in names
               if n.startswith("_") and not n.startswith("__") and t != m]
    assert private == [], f"private names imported across modules: {private}"


def test_the_detector_sees_a_circle() -> None:
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]


def test_type_only_imports_count() -> None:
    """The display sees the run's ETA through a type-only import; the graph has that edge."""
    graph = _imports()
    assert ("ssl_bench.engine.eta", ["Eta"]) in graph["ssl_bench.engine.display"]


def test_the_command_writes_the_leaderboard_not_the_engine() -> None:
    graph = _imports()
    bad = [(m, t) for m, edges in graph.items() if m.startswith("ssl_bench.engine")
           for t, _ in edges if t.startswith("ssl_bench.leaderboard")]
    assert bad == []
    assert any(t == "ssl_bench.leaderboard" for t, _ in graph["ssl_bench.commands.run"])


def test_one_module_spells_the_checkpoint_store_paths() -> None:
    """``<cache>/checkpoints/<method>/<key>.safetensors`` and the work folders are built by
    ssl_bench.engine.checkpoint_store alone (user-supplied weights files are another
    matter: ssl_bench.backbones reads those)."""
    spelled = sorted(_module_name(p) for p in ROOT.rglob("*.py")
                     if any(s in p.read_text() for s in ('/ "checkpoints"', '"work_dirs"',
                                                         '}.safetensors"')))
    assert spelled == ["ssl_bench.engine.checkpoint_store"]
