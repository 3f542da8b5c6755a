"""The package layering as a contract: which package of reactor_jobs may import which, read
from the source with `ast` (imports inside functions and under TYPE_CHECKING count too).

Pure domain at the bottom, I/O above it, faces on top. A new dependency between packages
fails here by name: add it to LAYERS only if it keeps the graph acyclic and the layer sound.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import reactor_jobs

ROOT = Path(reactor_jobs.__file__).resolve().parent
PACKAGE = "reactor_jobs"  # `from reactor_jobs import __version__`: the package's own face

# Package (or top-level module) -> the packages it may import. The order runs bottom-up.
LAYERS: dict[str, set[str]] = {
    "domain": set(),  # events, the run state machine, policy, cron, errors: no I/O
    "statements": set(),  # loads named SQL blocks
    "wire": set(),  # the API's structs, shared by server and client
    "bundles": set(),  # packing a function folder, shared by server and client
    "config": {"domain"},
    "database": {"domain", "config"},
    "telemetry": {"domain", "config", "database"},
    "auth": {"domain", "config"},
    "data": {"domain", "config", "database", "statements", "wire"},
    # trigger definitions: a function.json declares its job's triggers, and the registry
    # makes the triggers table match them in its own transactions
    "triggers": {"domain", "statements"},
    "functions": {"domain", "statements", "triggers", "wire", "bundles"},
    "hosts": {"domain", "functions"},  # the programs that run job code
    "engine": {
        "domain",
        "statements",
        "config",
        "database",
        "telemetry",
        "functions",
        "hosts",
        "data",
        "triggers",
    },
    # The read side: rebuilds, queries, audit and export over the journal and projections.
    "projections": {"domain", "statements", "config", "database", "functions", "engine", "wire"},
    "node": {
        "domain",
        "config",
        "database",
        "telemetry",
        "data",
        "functions",
        "hosts",
        "engine",
        "triggers",
        "projections",
    },
    "app": {
        "domain",
        "config",
        "database",
        "functions",
        "hosts",
        "engine",
        "triggers",
        "node",
        "projections",
    },
    "http": {
        "wire",
        "domain",
        "statements",
        "config",
        "database",
        "telemetry",
        "auth",
        "data",
        "projections",
        "functions",
        "engine",
        "triggers",
        "node",
    },
    # The client depends on nothing of the server: only the shared structs and packing.
    "client": {PACKAGE, "wire", "bundles"},
    "cli": {
        PACKAGE,
        "domain",
        "config",
        "database",
        "telemetry",
        "auth",
        "projections",
        "engine",
        "hosts",
        "http",
        "node",
        "app",
        "client",
    },
    PACKAGE: {"app"},  # reactor_jobs.App and friends, loaded lazily
}
IO_MODULES = {"asyncpg", "aiohttp", "socket", "subprocess"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module name `path` imports, absolute, with its line; `from reactor_jobs import
    x` names reactor_jobs.x (a subpackage or a name of the package itself)."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package upwards
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*anchor, *([base] if base else [])])
            if base != PACKAGE:  # `from reactor_jobs import x` imports x, not the package's face
                yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    if len(parts) == 1 or parts[1] not in _LAYER_NAMES:
        return PACKAGE
    return parts[1]


_LAYER_NAMES = {p.stem if p.suffix == ".py" else p.name for p in ROOT.iterdir()} - {"__init__"}


def _sources() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "node_modules" not in p.parts)


def _graph() -> dict[str, dict[str, list[str]]]:
    """Layer -> imported layer -> where (file:line), across every module."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in _sources():
        source = _layer(_module_name(path))
        assert source is not None
        for name, line in _imports(path):
            target = _layer(name)
            if target is None or target == source:
                continue
            where = f"{path.relative_to(ROOT.parent)}:{line}"
            found = graph.setdefault(source, {}).setdefault(target, [])
            if where not in found:
                found.append(where)
    return graph


def _external(path: Path) -> set[str]:
    return {name.split(".")[0] for name, _ in _imports(path)} - {PACKAGE}


def test_every_layer_is_declared() -> None:
    assert set(_graph()) | {PACKAGE} <= set(LAYERS), "a new package: give it a row in LAYERS"
    for layer, allowed in LAYERS.items():
        assert allowed <= set(LAYERS), (layer, allowed - set(LAYERS))


def test_packages_import_only_their_allowed_layers() -> None:
    unexpected = [
        f"{source} -> {target} ({', '.join(where[:3])})"
        for source, targets in sorted(_graph().items())
        for target, where in sorted(targets.items())
        if target not in LAYERS.get(source, set())
    ]
    assert not unexpected, "imports outside the layering:\n" + "\n".join(unexpected)


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a path [a, b, ..., a], or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for nxt in sorted(edges.get(node, ())):
            found = visit(nxt, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(edges):
        found = visit(start, [])
        if found:
            return found
    return None


def test_the_package_graph_has_no_cycle() -> None:
    graph = _graph()
    cycle = _cycle({source: set(targets) for source, targets in graph.items()})
    if cycle is not None:
        hops = itertools.pairwise(cycle)
        where = "\n".join(f"  {a} -> {b}: {', '.join(graph[a][b][:3])}" for a, b in hops)
        raise AssertionError("package cycle: " + " -> ".join(cycle) + "\n" + where)


def test_the_allowed_layering_itself_has_no_cycle() -> None:
    """So allowing a listed dependency can never close a loop."""
    assert _cycle(LAYERS) is None, _cycle(LAYERS)


def test_the_cycle_finder_names_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_domain_does_no_io() -> None:
    for path in sorted((ROOT / "domain").rglob("*.py")):
        io = _external(path) & IO_MODULES
        assert not io, f"{path.relative_to(ROOT.parent)} imports {sorted(io)}"


def _reached(start: list[Path]) -> set[Path]:
    """The reactor_jobs modules `start` loads, transitively (a subpackage's __init__ too; not
    reactor_jobs/__init__, whose imports are lazy: TYPE_CHECKING-only or inside functions)."""
    by_name = {_module_name(p): p for p in _sources()}
    seen: set[Path] = set()
    todo = list(start)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name, _ in _imports(path):
            parts = name.split(".")
            for n in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
                found = by_name.get(".".join(parts[:n]))
                if found is not None and found not in seen and n > 1 and parts[0] == PACKAGE:
                    todo.append(found)
    return seen


def test_function_hosts_load_no_database_or_http_client() -> None:
    """The host programs run job code: asyncpg or aiohttp in them would be reachable from it.
    Checked over every module of the package they load."""
    hosts = sorted((ROOT / "hosts").glob("*.py"))
    for path in _reached(hosts):
        io = _external(path) & {"asyncpg", "aiohttp"}
        assert not io, f"{path.relative_to(ROOT.parent)} imports {sorted(io)}"
