"""No import circles in `agent/`: a lower floor never imports a higher one, not even lazily or for types.

Every `import` statement counts (top level, inside functions, under `if TYPE_CHECKING:`), so each module
can be read on its own. Two circles used to exist and are pinned here by name as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parent.parent / "agent"


def _module_name(path: Path) -> str:
    parts = path.relative_to(AGENT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in AGENT.rglob("*.py") if "migrations" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:  # `from agent import metrics` names the module agent.metrics
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in files else node.module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_imports_of_every_kind() -> None:
    graph = _graph()
    assert "agent.store.tables" in graph["agent.metrics"]  # top level
    assert "agent.guide.service" in graph["agent.cli.guide"]  # inside a function and under TYPE_CHECKING
    assert "agent.metrics" in graph["agent.service"]  # `from agent import metrics`


def test_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_agent_has_no_import_circles() -> None:
    assert _cycles(_graph()) == []


def test_the_two_old_circles_stay_broken() -> None:
    graph = _graph()
    assert "agent.service" not in graph["agent.metrics"]  # metrics reads the core through a protocol
    assert "agent.metrics" not in graph["agent.store.writer"]  # the service passes record_commit in
    assert "agent.recovery.guard" not in graph["agent.recovery.config"]  # both use agent.recovery.values
