"""Layers point one way, read from the code (every import, inside functions too):

- no import circle among the modules of app/;
- a resource package never imports a protocol or presentation layer (app.oidc, ...);
- the runtime kit imports no resource package and no protocol layer;
- no function-level import of an app module (they are how circles hide).
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"
PROTOCOL = {"oidc", "hosted", "federation", "scim", "console"}
BELOW_RESOURCES = {"core", "models", "runtime", "events", "config"}
NOT_RESOURCE = PROTOCOL | BELOW_RESOURCES | {"webhooks", "outbox", "health", "main", "api", "cli",
                                            "lifecycle", "__init__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(APP.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_graph() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """module -> the app modules it imports; and every function-level import of an app module."""
    paths = {module_name(p): p for p in APP.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    nested: list[tuple[str, int, str]] = []
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        inside = {id(i) for f in functions for i in ast.walk(f)
                  if isinstance(i, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            found: list[str] = []
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".")
                    parts = parts[: len(parts) - node.level + (1 if is_package else 0)]
                    base = ".".join(parts + ([node.module] if node.module else []))
                found = [base] + [f"{base}.{a.name}" for a in node.names]
            for target in found:
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
                    if id(node) in inside:
                        nested.append((name, node.lineno, target))
        graph[name] = targets
    return graph, nested


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


GRAPH, NESTED = read_graph()


class TestImportGraph:
    def test_the_graph_was_read(self):
        assert len(GRAPH) > 100
        assert "app.oidc.runtime" in GRAPH["app.oidc.endpoints.token"]

    def test_no_circles(self):
        assert circles(GRAPH) == []

    def test_the_circle_finder_finds_one(self):
        assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

    def test_resource_packages_never_import_a_protocol_layer(self):
        upward = [(m, t) for m, targets in GRAPH.items() for t in targets
                  if package(m) not in NOT_RESOURCE and package(t) in PROTOCOL]
        assert upward == []

    def test_the_runtime_kit_sits_below_the_resources(self):
        upward = [(m, t) for m, targets in GRAPH.items() if package(m) == "runtime" for t in targets
                  if package(t) not in BELOW_RESOURCES]
        assert upward == []

    def test_no_function_level_imports_of_app_modules(self):
        assert NESTED == []
