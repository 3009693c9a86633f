"""The project under test: its interpreter, its state directory, and validated pytest options."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common import procs
from common.budget import CHARS_PER_TOKEN, DEFAULT_MAX_TOKENS
from common.errors import OnrecordError
from common.git import Git
from common.workspace import Workspace
from servers.testing.settings import TestingSettings

PLUGIN_DIR = Path(__file__).resolve().parent / "pytest_plugin"
_EXPRESSION = re.compile(r"^[A-Za-z0-9_.\-\[\] ()/:]{1,200}$")


class TestingError(OnrecordError):
    """The project cannot be tested as asked: bad option, no pytest, no such target."""


@dataclass
class Project:
    root: Path
    workspace: Workspace
    git: Git
    state: Path
    options: TestingSettings = field(default_factory=TestingSettings)
    max_tokens: int = DEFAULT_MAX_TOKENS
    _checked: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        root: Path,
        state_dir: Path,
        options: TestingSettings | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> Project:
        workspace = Workspace(root)
        digest = hashlib.sha256(str(workspace.root).encode("utf-8")).hexdigest()[:12]
        state = state_dir / "testing" / f"{workspace.root.name}-{digest}"
        return cls(
            workspace.root, workspace, Git(workspace.root), state, options or TestingSettings(), max_tokens
        )

    @property
    def max_chars(self) -> int:
        return int(self.max_tokens * CHARS_PER_TOKEN * 0.9)

    def python(self) -> tuple[list[str], str]:
        """The argv prefix that runs the project's Python, and how it was chosen."""
        command = self.options.command
        if command is not None:
            return [*command, "python"], f"{' '.join(command)} python (testing.command)"
        configured = self.options.python
        if configured is not None:
            path = Path(configured) if Path(configured).is_absolute() else self.root / configured
            if not path.exists():
                raise TestingError(f"[tool.onrecord.testing] python {configured!r} does not exist")
            return [str(path)], f"{path} (testing.python)"
        for candidate in (".venv/bin/python", "venv/bin/python"):
            path = self.root / candidate
            if path.exists():
                return [str(path)], f"{path} (the project's {candidate.split('/')[0]})"
        return [sys.executable], f"{sys.executable} (onrecord's own interpreter)"

    async def check_pytest(self, prefix: list[str], described: str) -> None:
        """Refuse clearly when the interpreter has no pytest (checked once per interpreter)."""
        key = " ".join(prefix)
        if key in self._checked:
            return
        result = await procs.run(
            [*prefix, "-c", "import pytest; print(pytest.__version__)"],
            cwd=self.root,
            env=self.env(),
            timeout_s=60,
        )
        if result.returncode != 0:
            raise TestingError(
                f"pytest is not installed for the interpreter {described}; install it there "
                f"(`{key} -m pip install pytest`) or set [tool.onrecord.testing] python or command"
            )
        self._checked[key] = result.text().strip()

    async def check_module(self, prefix: list[str], described: str, module: str, wanted_for: str) -> None:
        """Refuse clearly when an option needs a plugin the project's environment lacks."""
        key = f"{' '.join(prefix)}::{module}"
        if key in self._checked:
            return
        result = await procs.run(
            [*prefix, "-c", f"import {module}"], cwd=self.root, env=self.env(), timeout_s=60
        )
        if result.returncode != 0:
            raise TestingError(
                f"{wanted_for} needs the {module!r} package, which the interpreter {described} does not have; "
                "install it in the project's environment or leave the option out"
            )
        self._checked[key] = "ok"

    def env(self, events: Path | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGIN_DIR), env.get("PYTHONPATH", "")) if p)
        env["COLUMNS"] = "200"
        env.pop("PYTEST_ADDOPTS", None)  # our options are the whole story; see the result's argv
        env.pop("ONRECORD_PYTEST_EVENTS", None)
        if events is not None:
            env["ONRECORD_PYTEST_EVENTS"] = str(events)
        return env

    def target(self, value: str) -> str:
        """A node id or path under the root, refused if it could be read as an option."""
        if not isinstance(value, str) or not value:
            raise TestingError(
                "each target must be a non-empty node id or path, e.g. 'tests/test_a.py::test_b'"
            )
        path, sep, rest = value.partition("::")
        return self.argument(path, "target") + (sep + rest if sep else "")

    def argument(self, value: str, what: str) -> str:
        """A path under the root as pytest or ruff will get it: never something they could read as
        an option (`-x`) or expand from a file (`@args`, which pytest honours even after `--`)."""
        if not isinstance(value, str) or value.startswith(("-", "@")):
            raise TestingError(
                f"{what} {value!r} starts with {str(value)[:1]!r}; pass a node id or a path inside the root, "
                "not an option or an @file"
            )
        relative = self.workspace.resolve(value).relative
        if relative.startswith(("-", "@")):
            # A file named like an option: spelled so that nothing reads it as one.
            return f"./{relative}"
        return relative


def expression(value: str | None, what: str) -> str | None:
    """A -k or -m expression: one argv element, of a restricted alphabet."""
    if value is None:
        return None
    if not _EXPRESSION.match(value) or value.lstrip().startswith("-"):
        raise TestingError(
            f"{what} {value!r} is not a plain pytest expression; use names, 'and', 'or', 'not' and parentheses"
        )
    return value


def pytest_args(
    project: Project,
    targets: Sequence[str] | None,
    keyword: str | None,
    marker: str | None,
    *,
    last_failed: bool = False,
    max_failures: int | None = None,
    workers: int | str | None = None,
) -> list[str]:
    args = ["-p", "onrecord_pytest", "-q", "--color=no"]
    if (k := expression(keyword, "keyword")) is not None:
        args += ["-k", k]
    if (m := expression(marker, "marker")) is not None:
        args += ["-m", m]
    if last_failed:
        args += ["--last-failed", "--last-failed-no-failures=all"]
    if max_failures is not None:
        if not 1 <= max_failures <= 100_000:
            raise TestingError(f"max_failures {max_failures} must be between 1 and 100000")
        args.append(f"--maxfail={max_failures}")
    if workers is not None:
        if workers != "auto" and not (isinstance(workers, int) and 1 <= workers <= 64):
            raise TestingError(
                f"workers {workers!r} must be 'auto' or a number from 1 to 64 (needs pytest-xdist)"
            )
        args += ["-n", str(workers)]
    args.append("--")
    args += [project.target(t) for t in targets or []]
    return args
