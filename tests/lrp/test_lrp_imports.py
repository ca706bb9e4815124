"""lrp/ may import models/, never the other way round, and lrp/'s own modules import each other one way
(issue 14 item 5). Read from the source (ast), counting imports inside functions too: a function-level
import hides a circle until the function runs. (A fresh ``import interpfool.models`` cannot show it: the
``interpfool`` package itself imports the interpreters, hence lrp/.)"""
import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _is_module(name: str) -> bool:
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The interpfool modules ``path`` imports anywhere in it; ``from pkg import sub`` counts as ``pkg.sub``
    when that is a module."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                                   # relative: from ..lrp import x
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if _is_module(sub) else base)
    return {m for m in found if m == "interpfool" or m.startswith("interpfool.")}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in (SRC / "interpfool").rglob("*.py")}


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_checker_sees_function_level_and_module_level_imports():
    graph = _graph()
    assert "interpfool.models.activations" in graph["interpfool.models.presoftmax"]   # inside feeding_cells
    assert "interpfool.models.presoftmax" in graph["interpfool.lrp.adapters"]        # lrp finds the shift


def test_models_never_imports_lrp():
    graph = _graph()
    bad = {m: sorted(r for r in _reachable(graph, m) if _in(r, "interpfool.lrp"))
           for m in graph if _in(m, "interpfool.models")}
    assert not {m: r for m, r in bad.items() if r}, "models/ reaches lrp/ (lrp/ may import models/, not back)"


def test_no_import_cycle_in_lrp_or_models():
    graph = {m: {n for n in deps if _in(n, "interpfool.lrp") or _in(n, "interpfool.models")}
             for m, deps in _graph().items() if _in(m, "interpfool.lrp") or _in(m, "interpfool.models")}
    state: dict[str, int] = {}                                # 1: on the current path, 2: done

    def visit(stack: list[str]) -> None:
        state[stack[-1]] = 1
        for nxt in sorted(graph.get(stack[-1], ())):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt])
            if nxt not in state:
                visit(stack + [nxt])
        state[stack[-1]] = 2

    for module in sorted(graph):
        if module not in state:
            visit([module])
