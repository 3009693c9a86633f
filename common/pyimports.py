"""Which files of a project a Python file imports, from its source (no execution)."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

from common import offload


def module_name(path: str) -> str | None:
    """`src/pkg/mod.py` -> `pkg.mod`; `pkg/__init__.py` -> `pkg`."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts and parts[0] == "src":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or None


def module_index(files: Iterable[str]) -> dict[str, str]:
    """Module name -> file, for every Python file."""
    out: dict[str, str] = {}
    for f in files:
        if f.endswith(".py") and (m := module_name(f)):
            out[m] = f
    return out


def imported_files(path: str, source: str, modules: dict[str, str]) -> set[str]:
    """Files in `modules` that the Python source at `path` imports (absolute and relative imports)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    package = module_name(path) or ""
    if not path.endswith("__init__.py"):
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".") if package else []
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for n in names:
            while n:
                if n in modules and modules[n] != path:
                    found.add(modules[n])
                    break
                n = n.rpartition(".")[0]
    return found


def import_graph(files: Iterable[str], read: Callable[[str], str | None]) -> dict[str, set[str]]:
    """For every Python file, the project files it imports directly."""
    python = [f for f in files if f.endswith(".py")]
    modules = module_index(python)
    graph: dict[str, set[str]] = {}
    for f in python:
        offload.checkpoint()
        source = read(f)
        graph[f] = imported_files(f, source, modules) if source is not None else set()
    return graph
