"""The layout holds: no import cycles among the modules of rag/, nothing in rag/ imports the front ends above it,
and modules and functions stay small enough to read (a module or function over the limits would need an entry in
GRANDFATHERED, and none has one)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# Not yet split: each may shrink, none may grow. A new module or function meets the limits above.
GRANDFATHERED: dict[str, int] = {}  # module or function -> the size it may keep (none left)


def _modules(folder: str) -> dict[str, ast.Module]:
    out = {}
    for path in sorted((ROOT / folder).glob("*.py")):
        name = folder if path.stem == "__init__" else f"{folder}.{path.stem}"
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _imports(tree: ast.Module) -> set[str]:
    """Every module it imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_no_import_cycles_in_rag():
    graph = {m: {i for i in _imports(t) if i.startswith("rag.") and i != m} for m, t in _modules("rag").items()}

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for dep in graph.get(todo.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    cycles = sorted(m for m in graph if m in reach(m))
    assert not cycles, f"modules on an import cycle: {cycles}"


def test_nothing_imports_upward():
    for module, tree in {**_modules("rag"), **_modules("ui")}.items():
        above = {i for i in _imports(tree) if i.split(".")[0] in ("ui", "bench", "tests")}
        if module == "rag.cli":  # the command line starts the web chat: it is a front end itself
            above = {i for i in above if not i.startswith("ui")}
        if module.startswith("ui"):
            above = {i for i in above if not i.startswith("ui")}
        assert not above, f"{module} imports {sorted(above)}, above it in the layout"


def test_modules_and_functions_stay_small():
    too_big = []
    for folder in ("rag", "ui"):
        for path in sorted((ROOT / folder).glob("*.py")):
            rel = f"{folder}/{path.name}"
            text = path.read_text(encoding="utf-8")
            lines = len(text.splitlines())
            if lines > GRANDFATHERED.get(rel, MAX_MODULE_LINES):
                too_big.append(f"{rel}: {lines} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    n = node.end_lineno - node.lineno + 1
                    if n > GRANDFATHERED.get(f"{rel}:{node.name}", MAX_FUNCTION_LINES):
                        too_big.append(f"{rel}:{node.name}: {n} lines")
    assert not too_big, "split these (or shorten them): " + "; ".join(too_big)
