"""The project's own import graph (read with ast, imports inside functions included): no cycle among
the apps' modules, and domain services never import realtime or a task module (config/transport.py
carries tasks and notifications between them)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "events", "leads", "realtime", "scoring")
DOMAIN = ("events", "leads", "realtime", "scoring")


def project_modules(root: Path) -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            if {"tests", "migrations"} & set(path.relative_to(root).parts):
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = project_modules(root)
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                targets.add(source)
                targets.update(f"{source}.{alias.name}" for alias in node.names)  # `from pkg import module`
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_reader_finds_a_cycle_through_an_import_inside_a_function(tmp_path):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "scoring" / "services.py").write_text("from .wakeups import events_enqueue\n")
    (tmp_path / "scoring" / "wakeups.py").write_text("def send():\n    from . import services\n")
    assert cycles(import_graph(tmp_path)) == [["scoring.services", "scoring.wakeups"]]


def test_no_import_cycle_among_the_apps():
    found = [component for component in cycles(import_graph(ROOT))
             if any(module.split(".")[0] in DOMAIN for module in component)]
    assert found == []


def test_domain_services_never_import_realtime_or_task_modules():
    graph = import_graph(ROOT)
    services = [name for name in graph if name.split(".")[0] in DOMAIN and name.split(".")[-1] in
                {"services", "imports", "selectors", "engine", "partitions", "wakeups", "segment", "webhooks"}]
    assert services, "no service module found: the test would pass vacuously"
    offending = {
        name: sorted(target for target in graph[name]
                     if target.split(".")[-1] == "tasks" or (target.startswith("realtime") and not name.startswith("realtime")))
        for name in services
    }
    assert {name: targets for name, targets in offending.items() if targets} == {}
