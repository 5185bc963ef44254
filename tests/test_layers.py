"""The package's import graph: no cycles, and no import from a lower layer to a higher one.

The layers, bottom to top (docs/architecture.rst, "Layers", shows the same map)::

    7 integration  middleware, contrib, server, cli, worker, gunicorn_logging, webhooks,
                   testing, the package itself (it re-exports Registry)
    6 app          app, metrics, health
    5 proxy        proxy (pull-through cache: wraps content per request, checks routes)
    4 http         handlers, routes, responses, streams
    3 auth         auth, events (names identities as auth.policy does), logs
    2 content      content (paths, catalog, blobs, uploads, manifests, listings), gc, scrub
    1 foundation   storage, parsers and vocabularies: errors, digests, references, manifests,
                   ranges, access, wsgi, hashers, options, retention, usage, leases, ...

A module may import its own layer and the layers below. The graph is read from the source
with :mod:`ast` (every ``import``, module-level or inside a function; ``TYPE_CHECKING`` imports
count for the layers, not for cycles, since they never run). Every module must be placed: a
new module fails here until it is given a layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "docker_registry_wsgi"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

#: Layer of each module or package (a package's entry covers its submodules).
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        ["version", "extras", "hashers", "ranges", "wsgi", "access", "errors", "digests",
         "references", "manifests", "tomlfiles", "retention", "options", "gunicorn_input",
         "storage", "leases", "usage"], 1),
    **dict.fromkeys(["content", "gc", "scrub"], 2),
    **dict.fromkeys(["auth", "events", "logs"], 3),
    **dict.fromkeys(["handlers", "routes", "responses", "streams"], 4),
    "proxy": 5,
    **dict.fromkeys(["app", "metrics", "health"], 6),
    **dict.fromkeys(["", "__main__", "middleware", "contrib", "server", "cli", "worker",
                     "gunicorn_logging", "webhooks", "testing"], 7),
}
LAYER_NAMES = {1: "foundation", 2: "content", 3: "auth", 4: "http", 5: "proxy", 6: "app", 7: "integration"}

#: Runtime cycles left on purpose, each with its reason. proxy/config.py's ``build()`` makes the
#: ``Mirrors`` the rest of proxy/mirrors.py is configured from (imported inside the function).
ALLOWED_CYCLES = {frozenset({"proxy.config", "proxy.mirrors"})}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _type_checking_nodes(tree: ast.AST) -> set[ast.AST]:
    """The import statements inside ``if TYPE_CHECKING:`` blocks."""
    guarded: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                guarded.update(n for n in ast.walk(child) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return guarded


def _imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """``(imported module, runs at import or call time)`` for every import of ``module`` inside the package."""
    tree = ast.parse(path.read_text(), str(path))
    guarded = _type_checking_nodes(tree)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = [p for p in package if p]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
                target = node.module[len(PACKAGE) + 1:]
            else:
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}" if target else alias.name
                found.append((full if full in MODULES else target, node not in guarded))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    found.append((alias.name[len(PACKAGE) + 1:], node not in guarded))
    return [(target, runs) for target, runs in found if target != module]


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def layer_of(module: str) -> int | None:
    """The layer of the longest placed prefix of ``module``."""
    parts = module.split(".") if module else [""]
    for end in range(len(parts), 0, -1):
        key = ".".join(parts[:end])
        if key in LAYERS:
            return LAYERS[key]
    return None


def test_the_graph_was_read() -> None:
    """The walk found the package and the imports we know are there (so the checks below bite)."""
    assert {"app", "content", "content.uploads", "handlers.blobs", "routes", "errors"} <= set(MODULES)
    assert ("content.blobs", True) in GRAPH["content.uploads"]
    assert ("handlers.blobs", True) in GRAPH["routes"]
    assert ("proxy", False) in GRAPH["app"], "TYPE_CHECKING imports are seen, and marked"


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m or PACKAGE for m in MODULES if layer_of(m) is None)
    assert unplaced == [], f"give these modules a layer in LAYERS: {unplaced}"


def test_no_import_goes_up_a_layer() -> None:
    upward = sorted(
        f"{module or PACKAGE} ({LAYER_NAMES[layer_of(module) or 0]}) imports "
        f"{target or PACKAGE} ({LAYER_NAMES[layer_of(target) or 0]})"
        for module, imports in GRAPH.items()
        for target, _ in imports
        if (layer_of(target) or 0) > (layer_of(module) or 0)
    )
    assert upward == []


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_no_import_cycles() -> None:
    runtime = {m: {t for t, runs in imports if runs and t in MODULES} for m, imports in GRAPH.items()}
    assert [sorted(c) for c in _cycles(runtime) if c not in ALLOWED_CYCLES] == []


@pytest.mark.parametrize("graph,expected", [
    ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [frozenset({"a", "b"})]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}}, [frozenset({"a", "b", "c"})]),
])
def test_the_cycle_finder_finds_cycles(graph: dict[str, set[str]], expected: list[frozenset[str]]) -> None:
    assert _cycles(graph) == expected


def test_parsers_and_errors_do_not_depend_on_http() -> None:
    """The pure parsers raise the error vocabulary; none reaches a request, a response or WSGI.

    ``ranges`` may use werkzeug's header parsers (``werkzeug.http``): issue 13 asks that HTTP be
    parsed by the library that does it; its request and response wrappers stay out.
    """
    for module in ("errors", "digests", "references", "manifests", "ranges"):
        source = MODULES[module].read_text()
        allowed = ("from werkzeug.http import",) if module == "ranges" else ()
        lines = [line for line in source.splitlines() if "werkzeug" in line and line.startswith(("import", "from"))]
        assert all(line.startswith(allowed) for line in lines) if allowed else not lines, module
        assert "werkzeug.wrappers" not in source and "werkzeug.wsgi" not in source, module
        assert all(t not in {"responses", "app", "handlers"} for t, _ in GRAPH[module]), module


def test_no_handler_touches_storage_or_key_layout() -> None:
    """Handlers speak to the content façade only (issue 13, "Layers that a reader can trust")."""
    for module in (m for m in MODULES if m.startswith("handlers")):
        source = MODULES[module].read_text()
        assert "content.storage" not in source and "blob_key" not in source, module
        assert all(not t.startswith(("storage", "content.paths")) for t, _ in GRAPH[module]), module


def test_the_app_special_cases_no_endpoint() -> None:
    """The access each request needs is the route table's; app.py names no endpoint and loads no strings."""
    source = MODULES["app"].read_text()
    for endpoint in ('"base"', '"catalog"', '"uploads"', "importlib"):
        assert endpoint not in source, endpoint
