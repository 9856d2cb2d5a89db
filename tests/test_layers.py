"""The package's shape: layers import only downwards, no import cycles, the pages see only the service and figures.

Imports inside functions count; only imports under `if TYPE_CHECKING:` are exempt (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "analysis"
# lowest first: a module may import its own layer and the layers before it
LAYERS = ("core", "store", "data", "models", "training", "methods", "runs", "studies", "reports", "figures",
          "service", "bench", "cli")
MAX_ENTRIES = 15


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(path: Path, package: str) -> set[str]:
    """Every `analysis...` name a file imports (a module, or a module plus the name taken from it)."""
    found: set[str] = set()
    here = module_name(path, PACKAGE).split(".") if path.is_relative_to(PACKAGE) else []
    if path.name != "__init__.py":
        here = here[:-1]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == package)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == package:
                found.update(f"{base}.{a.name}" for a in node.names)
                found.add(base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a name resolves to the longest module it starts with)."""
    files = {module_name(p, root): p for p in root.rglob("*.py") if "__pycache__" not in p.parts}

    def resolve(name: str) -> str | None:
        while name not in files and "." in name:
            name = name.rsplit(".", 1)[0]
        return name if name in files else None

    out = {}
    for mod, path in files.items():
        targets = {resolve(n) for n in imported_names(path, root.name)}
        out[mod] = {t for t in targets if t and t != mod and not mod.startswith(t + ".")}
    return out


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                connect(w)
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
                found.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            connect(v)
    return found


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_a_cycle_is_found(tmp_path):
    pkg = tmp_path / "analysis"
    (pkg / "core").mkdir(parents=True)
    for name, text in {"__init__.py": "", "core/__init__.py": "",
                       "core/a.py": "def f():\n    from analysis.core import b\n",
                       "core/b.py": "from analysis.core.a import f\n",
                       "core/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from analysis.core import a\n"}.items():
        (pkg / name).write_text(text)
    g = graph(pkg)
    assert cycles(g) == [["analysis.core.a", "analysis.core.b"]]
    assert g["analysis.core.c"] == set()  # TYPE_CHECKING imports are exempt


def test_layers_import_only_downwards():
    upward = [f"{m} -> {t}" for m, targets in graph().items() for t in targets
              if layer_of(m) is not None and layer_of(t) is not None and layer_of(t) > layer_of(m)]
    assert upward == []


def test_every_package_has_a_layer():
    packages = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert packages == sorted(LAYERS)


def test_at_most_fifteen_entries_under_analysis():
    entries = [p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"]
    assert len(entries) <= MAX_ENTRIES, sorted(entries)


def test_the_cli_parses_and_calls_the_service():
    """Commands import the service (and core's config and errors, the figures, the benchmarks), not the layers
    that do the work."""
    allowed = ("analysis.cli", "analysis.core", "analysis.service", "analysis.figures", "analysis.bench")
    bad = {f"{m} -> {t}" for m, targets in graph().items() if m.startswith("analysis.cli") for t in targets
           if not t.startswith(allowed)}
    assert sorted(bad) == []


@pytest.mark.parametrize("page", sorted((ROOT / "dashboard").glob("*.py")) + [ROOT / "app.py"], ids=lambda p: p.name)
def test_pages_import_only_the_service_and_figures(page):
    allowed = ("analysis.service", "analysis.figures")
    names = imported_names(page, "analysis")
    bad = sorted(n for n in names if n != "analysis" and not n.startswith(allowed))
    bad += ["from analysis import " + n.split(".")[1] for n in names
            if n.count(".") == 1 and not n.startswith(allowed)]
    assert bad == []
