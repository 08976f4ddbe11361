"""The shape of the code: no import circles between edge modules, light imports where they matter,
couplings between numbers kept in step."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

EDGE = REPO / "edge"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported(node: ast.stmt, package: str, modules: set[str]) -> set[str]:
    """The edge modules one import statement names (relative imports resolved against ``package``)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name.startswith("edge")}
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
        if base.startswith("edge"):
            return {base} | {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
    return set()


def top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """edge modules imported when ``path`` is imported: module level (try/if included), not inside
    functions or classes (lazy), not under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update(imported(node, package, modules))
            elif isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return {m for m in found if m in modules and m != me}


def import_graph(lazy: bool = False) -> dict[str, set[str]]:
    """Module -> the edge modules it imports at module level (``lazy``: inside functions too)."""
    paths = sorted(EDGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    find = all_imports if lazy else top_level_imports
    return {module_name(p): find(p, modules) for p in paths}


def all_imports(path: Path, modules: set[str]) -> set[str]:
    """edge modules ``path`` imports anywhere (in functions too), not under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))

    class DropTypeChecking(ast.NodeTransformer):
        def visit_If(self, node: ast.If) -> ast.AST | None:
            return None if _is_type_checking(node) else self.generic_visit(node)

    tree = DropTypeChecking().visit(tree)
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        found.update(imported(node, package, modules))
    return {m for m in found if m in modules and m != me}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_graph_walker_sees_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_between_edge_modules():
    graph = import_graph()
    assert "edge.daemon" in graph and graph["edge.daemon"], "the walker found no imports at all"
    assert cycles(graph) == []


def test_no_import_circles_even_through_lazy_imports():
    """A function-level import that closes a circle (classify -> pipeline -> learn -> evaluate -> classify)
    is a helper in the wrong home, even if Python tolerates it."""
    graph = import_graph(lazy=True)
    assert "edge.learn" in graph["edge.pipeline"], "the walker missed a function-level import"
    assert cycles(graph) == []


def test_the_data_flow_goes_one_way():
    """A frame's data never climbs back: capture and the prediction know nothing of the engine, sinks or daemon."""
    graph = import_graph()

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for m in graph.get(todo.pop(), ()):
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen

    for low, forbidden in [("edge.prediction", ("edge.engine", "edge.model", "edge.sinks", "edge.daemon")),
                           ("edge.capture.base", ("edge.capture.opencv", "edge.capture.picamera", "edge.daemon")),
                           ("edge.sinks.base", ("edge.engine", "edge.model", "edge.daemon", "edge.config")),
                           ("edge.bench", ("edge.daemon", "edge.doctor")), ("edge.board", ("edge.bench", "edge.doctor"))]:
        bad = sorted(m for m in reach(low) if m.startswith(forbidden))
        assert bad == [], f"{low} imports {bad}"


def test_edge_imports_each_module_in_a_fresh_interpreter():
    """Importing any one module first must work (an import circle shows up as an ImportError here)."""
    names = sorted(m for m in import_graph() if m != "edge.__main__")  # __main__ runs the CLI
    code = ("import subprocess, sys\n"
            "bad = []\n"
            "for name in sys.argv[1:]:\n"
            "    r = subprocess.run([sys.executable, '-c', f'import {name}'], capture_output=True, text=True)\n"
            "    if r.returncode: bad.append(f'{name}: {r.stderr.strip().splitlines()[-1]}')\n"
            "print('\\n'.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


def test_the_start_wait_stays_under_the_units_start_timeout():
    from edge.daemon import Daemon

    unit = (REPO / "systemd" / "edge.service").read_text()
    timeout = float(re.search(r"^TimeoutStartSec=(\d+)", unit, re.M).group(1))
    assert Daemon.WAIT_FOR_SOURCE < timeout / 2, "READY=1 must come well before systemd gives up on the start"


def test_the_daemon_does_not_load_the_download_code():
    """The model store is needed at run time; fetching (urllib, tarfile, the progress bar) only by `edge models fetch`."""
    code = ("import sys, edge.daemon, edge.models\n"
            "edge.models.resolve\n"
            "print(sorted(m for m in ('edge.models.fetch', 'tarfile', 'urllib.request') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
