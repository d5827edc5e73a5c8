"""Layout rules of DEVELOPERS.md checked on the source: the training wing's imports flow one
way (no cycle, not even through a function-level import), and the data layer never imports
training."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every hdnnp module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules}


def _graph():
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _reachable(graph, start):
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_training_modules_have_no_import_cycle():
    graph = _graph()
    training = [m for m in graph if m.startswith("hdnnp.training")]
    assert len(training) >= 10
    cycles = [m for m in training if m in _reachable(graph, m)]
    assert not cycles, f"import cycles through {cycles}"


def test_the_data_layer_never_imports_training():
    graph = _graph()
    for layer in ("hdnnp.data", "hdnnp.descriptors", "hdnnp.neighbours", "hdnnp.io"):
        reached = _reachable(graph, layer) | {layer}
        assert not [m for m in reached if m.startswith("hdnnp.training")], layer


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert "a" in _reachable(graph, "a") and "d" not in _reachable(graph, "d")


def test_the_package_has_no_import_cycle():
    """Not only the training wing: every hdnnp module's imports (module level or inside
    functions) flow one way, e.g. the data sources (bundled sets, labelling databases)
    import the Dataset class, and the loader that dispatches between them imports them."""
    graph = _graph()
    cycles = sorted(m for m in graph if m in _reachable(graph, m))
    assert not cycles, f"import cycles through {cycles}"
