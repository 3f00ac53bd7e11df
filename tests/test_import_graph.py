"""The import graph of pixelserve/, read with ast (nothing is imported): no cycles, function-local
imports included, and format detection that imports no torch.

Edges: every ``import`` / ``from ... import`` anywhere in a module (inside functions too), relative
imports resolved. ``import a.b.c`` imports ``a.b.c``; ``from a.b import c`` imports ``a.b`` (its
``__init__`` runs) and also ``a.b.c`` when that is a module. A module's edge to itself is dropped:
the only way to write one is a package's ``__init__`` importing its own submodules with
``from pkg import sub``, which is fine as long as no submodule imports the package back (that
would be a cycle, and is reported as one).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pixelserve"
MAX_MODULE_LINES = 400


def module_files(package: Path) -> dict[str, Path]:
    out = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph(package: Path) -> dict[str, dict[str, int]]:
    """module -> {imported module of the package: line of the first such import}."""
    modules = module_files(package)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [known(alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [known(source)]
                targets += [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in modules]
            else:
                continue
            for target in targets:
                if target is not None and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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


def describe(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    members = set(component)
    lines = [f"cycle of {len(component)}:"]
    for module in component:
        for target, line in sorted(graph[module].items()):
            if target in members:
                lines.append(f"  {module} -> {target}  (line {line})")
    return "\n".join(lines)


def test_pixelserve_has_no_import_cycles():
    graph = import_graph(PACKAGE)
    found = cycles(graph)
    assert not found, "import cycles (function-local imports count):\n" + "\n".join(describe(graph, c) for c in found)


def test_the_cycle_finder_sees_a_cycle_through_a_function_local_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub import b  # the package's own submodule: fine\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")
    graph = import_graph(pkg)
    assert graph["pkg.sub"] == {"pkg.sub.b": 1}
    assert cycles(graph) == [["pkg.a", "pkg.sub", "pkg.sub.b"]]  # a -> sub (its __init__ runs) -> b -> a
    (pkg / "sub" / "b.py").write_text("import pkg.sub\n")  # a submodule importing its package back
    assert cycles(import_graph(pkg)) == [["pkg.sub", "pkg.sub.b"]]


def test_format_detection_imports_no_torch():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    code = "import pixelserve.engine.weights.formats, sys; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, long
