"""The project's layout holds: one app per concern, each importing only the
apps below it, and no module importing itself round a circle.

The import graph is read from the source with `ast` (nothing is imported),
over every module of the project's own packages except migrations. An edge
is an `import` or `from … import` of a project module, wherever it stands:
at the top, in an `if`, or inside a function. Imports under
`if TYPE_CHECKING:` are left out (they never run).

Rules:
- no circle between modules, function-level imports included;
- an import inside a function says why on the line above, with a comment
  starting `# lazy:` (start-up cost, or a module that cannot load before
  Django's app registry is ready), never to dodge a circle (the circle
  check sees through it);
- each app imports only the apps below it:
      webhooks   ← deliveries ← monitoring ← api, dashboard
      webhooks   ← deliveries ← demo
  and config's leaf modules (env, embedded_redis); only the composition
  root (config.urls, config.wsgi, config.asgi) may import any app, and
  nothing imports it.
"""

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "webhooks", "deliveries", "monitoring", "api", "dashboard", "demo")

CONFIG_LEAVES = {"config", "config.env", "config.embedded_redis", "config.settings"}
COMPOSITION_ROOT = {"config.urls", "config.wsgi", "config.asgi"}
# app → the apps it may import (besides itself and config's leaves)
MAY_IMPORT = {
    "webhooks": set(),
    "deliveries": {"webhooks"},
    "monitoring": {"deliveries", "webhooks"},
    "api": {"monitoring", "deliveries", "webhooks"},
    "dashboard": {"monitoring", "deliveries", "webhooks"},
    "demo": {"deliveries", "webhooks"},
    "config": set(),
}
LAZY_MARK = "# lazy:"


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                modules[module_name(path)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    """The project modules `name` imports, each with where it does."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, in_function)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            in_function = True
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.append(submodule if submodule in known else base)
        for target in targets:
            # `import a.b.c` binds a, but it is a.b.c that is imported.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append(Import(name, target, node.lineno, in_function))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(tree, False)
    return found


def import_graph() -> tuple[dict[str, Path], list[Import]]:
    modules = project_modules()
    known = set(modules)
    edges = [edge for name, path in modules.items() for edge in imports_of(name, path, known)]
    return modules, edges


def circles(edges: list[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's
    algorithm, iterative), each sorted: every import circle, once."""
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
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


def app_of(module: str) -> str:
    return module.split(".")[0]


def layer_violations(edges: list[Import]) -> list[str]:
    problems = []
    for edge in edges:
        source, target = app_of(edge.importer), app_of(edge.imported)
        if edge.imported in COMPOSITION_ROOT:
            problems.append(
                f"{edge.importer}:{edge.line} imports the composition root {edge.imported}"
            )
            continue
        if edge.importer in COMPOSITION_ROOT or source == target:
            continue
        if edge.imported in CONFIG_LEAVES:
            continue
        if target not in MAY_IMPORT.get(source, set()):
            problems.append(
                f"{edge.importer}:{edge.line} imports {edge.imported} ({source} → {target})"
            )
    return problems


def unexplained_lazy_imports(modules: dict[str, Path], edges: list[Import]) -> list[str]:
    problems = []
    lines = {name: path.read_text().splitlines() for name, path in modules.items()}
    for edge in edges:
        if not edge.in_function:
            continue
        source = lines[edge.importer]
        here = source[edge.line - 1]
        above = source[edge.line - 2] if edge.line >= 2 else ""
        if LAZY_MARK not in here and not above.strip().startswith(LAZY_MARK):
            problems.append(
                f"{edge.importer}:{edge.line} imports {edge.imported} inside a function"
            )
    return problems


# --- the project ------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_graph_sees_the_apps_imports(graph):
    modules, edges = graph
    pairs = {(e.importer, e.imported) for e in edges}
    # A graph that missed imports would pass every rule below.
    assert ("deliveries.dispatch", "deliveries.actions") in pairs
    assert ("monitoring.receivers", "deliveries.signals") in pairs
    assert ("api.main", "api.webhooks") in pairs
    assert {"webhooks.models", "deliveries.dispatch", "monitoring.alerts"} <= set(modules)


def test_no_module_imports_itself_round_a_circle(graph):
    _, edges = graph
    assert circles([(e.importer, e.imported) for e in edges]) == []


def test_each_app_imports_only_the_apps_below_it(graph):
    _, edges = graph
    assert layer_violations(edges) == []


def test_the_engine_never_imports_monitoring_api_dashboard_or_demo(graph):
    _, edges = graph
    above = {"monitoring", "api", "dashboard", "demo"}
    assert [
        e for e in edges if app_of(e.importer) == "deliveries" and app_of(e.imported) in above
    ] == []


def test_webhooks_imports_no_other_app(graph):
    _, edges = graph
    assert [
        e
        for e in edges
        if app_of(e.importer) == "webhooks"
        and app_of(e.imported) != "webhooks"
        and e.imported not in CONFIG_LEAVES
    ] == []


def test_an_import_inside_a_function_says_why(graph):
    modules, edges = graph
    assert unexplained_lazy_imports(modules, edges) == []


# --- the checks themselves ----------------------------------------------------------


def test_a_circle_is_found_however_long():
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("e", "e2")]
    assert circles(edges) == [["a", "b", "c"]]
    assert circles([("x", "y"), ("y", "x")]) == [["x", "y"]]
    assert circles([("x", "y"), ("y", "z")]) == []


def test_an_import_upwards_is_a_violation():
    edges = [
        Import("deliveries.dispatch", "monitoring.alerts", 3, False),
        Import("monitoring.alerts", "deliveries.dispatch", 4, False),
        Import("webhooks.models", "config.urls", 5, False),
        Import("api.main", "config.env", 6, False),
    ]
    assert layer_violations(edges) == [
        "deliveries.dispatch:3 imports monitoring.alerts (deliveries → monitoring)",
        "webhooks.models:5 imports the composition root config.urls",
    ]


def test_a_function_level_import_is_found_and_needs_its_reason(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(
        "def f():\n    from pkg import b\n\n\ndef g():\n    # lazy: costly\n    from pkg import b\n"
    )
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
    )
    modules = {"pkg": package / "__init__.py", "pkg.a": package / "a.py", "pkg.b": package / "b.py"}
    edges = [e for name, path in modules.items() for e in imports_of(name, path, set(modules))]
    assert [(e.importer, e.imported, e.line, e.in_function) for e in edges] == [
        ("pkg.a", "pkg.b", 2, True),
        ("pkg.a", "pkg.b", 7, True),
    ]
    assert unexplained_lazy_imports(modules, edges) == ["pkg.a:2 imports pkg.b inside a function"]
