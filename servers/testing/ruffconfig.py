"""The project's ruff configuration is hostile input: nothing it names may lie outside the root.

Ruff reads `ruff.toml`, `.ruff.toml` and `[tool.ruff]` in `pyproject.toml` in the root and in any
folder below it. A key that names a file or folder (`extend`, `src`, `cache-dir`, `include`, ...)
could make ruff read, quote or lint something outside the project (`extend = "~/.aws/credentials"`
gets the file quoted in ruff's parse error). Such a configuration is refused before ruff runs,
naming the file and key, never the content of what it points at.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.workspace import Workspace
from servers.testing.project import TestingError

CONFIG_NAMES = ("ruff.toml", ".ruff.toml", "pyproject.toml")
# Keys whose values are paths (resolved against the config file's folder) or globs (the same).
PATH_KEYS = frozenset(
    {
        "extend",
        "cache-dir",
        "src",
        "include",
        "extend-include",
        "exclude",
        "extend-exclude",
        "namespace-packages",
    }
)


class RuffConfigError(TestingError):
    """The project's ruff configuration names something outside the root."""


def config_files(workspace: Workspace, names: list[str]) -> list[Path]:
    """The ruff configuration files among the project's files, and in the root in any case."""
    found = {n for n in names if n.rsplit("/", 1)[-1] in CONFIG_NAMES} | set(CONFIG_NAMES)
    return [workspace.root / n for n in sorted(found) if (workspace.root / n).is_file()]


def reads_ignored(files: list[Path]) -> bool:
    """Whether a configuration tells ruff to lint files .gitignore excludes."""
    return any((s := _ruff_settings(f)) is not None and s.get("respect-gitignore") is False for f in files)


# Folders ruff skips whatever the configuration says (its default `exclude`).
_RUFF_SKIPS = frozenset(
    {".git", ".venv", "venv", ".tox", ".nox", "node_modules", "__pypackages__", ".mypy_cache", ".ruff_cache"}
)


def walk(workspace: Workspace) -> list[str]:
    """Configuration file names under the root, including folders git ignores."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(workspace.root):
        dirnames[:] = [d for d in dirnames if d not in _RUFF_SKIPS]
        base = Path(dirpath)
        found += [(base / f).relative_to(workspace.root).as_posix() for f in filenames if f in CONFIG_NAMES]
    return found


def check(workspace: Workspace, files: list[Path]) -> None:
    """Refuse a configuration that names anything outside the root."""
    for path in files:
        settings = _ruff_settings(path)
        if settings is None:
            continue
        for key, value in _path_values(settings):
            if _leaves(workspace.root, path.parent, value):
                shown = path.relative_to(workspace.root).as_posix()
                # The path itself is not repeated: it may name a file the policy protects.
                raise RuffConfigError(
                    f"the project's ruff configuration {shown!r} sets {key} to a path outside the "
                    f"project root; onrecord does not run ruff with it. Point {key} inside the project, "
                    "or run ruff yourself"
                )


def _ruff_settings(path: Path) -> dict[str, Any] | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # ruff reports a broken file itself, and the content gate screens what it says
    if path.name == "pyproject.toml":
        section = data.get("tool", {}).get("ruff")
        return section if isinstance(section, dict) else None
    return data


def _path_values(settings: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _path_values(value, f"{name}.")
        elif key in PATH_KEYS:
            for item in value if isinstance(value, list) else [value]:
                yield name, str(item)


def _leaves(root: Path, base: Path, value: str) -> bool:
    text = os.path.expanduser(value) if value.startswith("~") else value
    if value.startswith("~") and text == value:
        return True  # a `~user` that does not expand is still somebody's home
    joined = os.path.normpath(os.path.join(base, text))
    real = os.path.realpath(joined)
    inside = str(root)
    return not all(p == inside or p.startswith(inside + os.sep) for p in (joined, real))
