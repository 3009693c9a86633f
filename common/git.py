"""A hardened git runner: the repository is hostile input (DESIGN §7).

- argv only, never a shell; revisions are verified with `rev-parse --verify --end-of-options` and
  replaced by the object id they name; paths go after `--` as literal pathspecs.
- No system or global config, no pager, no terminal prompts, no optional locks, no lazy fetch,
  no transport protocols, no discovery above the root.
- Repository config that names a program (fsmonitor, hooks, external diff, textconv, filter
  drivers, pagers, ssh commands, credential helpers, pack hooks, editors) is overridden with `-c`,
  which outranks every config file, including ones pulled in with include.
- A `.git` file or link that points outside the root is refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from common import procs
from common.errors import OnrecordError
from common.procs import ProcResult

GIT_TIMEOUT_S = 30.0
_FIXED_OVERRIDES = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
    "core.editor=false",
    "core.sshCommand=false",
    "core.gitProxy=",
    "core.askPass=",
    "core.alternateRefsCommand=",
    "core.untrackedCache=false",
    "core.quotePath=false",
    "credential.helper=",
    "diff.external=",
    "sequence.editor=false",
    "uploadpack.packObjectsHook=",
    "gc.auto=0",
    "maintenance.auto=false",
    "protocol.allow=never",
    "pager.log=false",
    "pager.diff=false",
    "pager.show=false",
    "pager.blame=false",
    "pager.grep=false",
)
# Config names that run a program, by shape; each one found in the repository is emptied.
_PROGRAM_KEY = re.compile(
    r"^(?:filter\.[^\n]+\.(?:clean|smudge|process)|diff\.[^\n]+\.(?:textconv|command)|"
    r"merge\.[^\n]+\.driver|credential\.[^\n]*helper|[^\n]*\.helper|pager\.[^\n]+|"
    r"core\.(?:fsmonitor|sshcommand|pager|editor|askpass|gitproxy|hookspath|alternaterefscommand)|"
    r"gc\.[^\n]*hook|uploadpack\.[^\n]*hook|remote\.[^\n]+\.(?:uploadpack|receivepack|vcs)|"
    r"[^\n]*\.(?:command|cmd|program|driver|hook))$",
    re.IGNORECASE,
)
_DATE = re.compile(r"^[A-Za-z0-9 :.,/+\-TZ]{1,64}$")


class GitError(OnrecordError):
    """A revision, path or repository was refused, or git failed."""


def safe_env(root: Path, git_dir: Path) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(git_dir),  # never the user's: no ~/.gitconfig, no credential stores
        "LC_ALL": "C",
        "GIT_DIR": str(git_dir),
        "GIT_WORK_TREE": str(root),
        "GIT_CEILING_DIRECTORIES": str(root.parent),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_PAGER": "cat",
        "PAGER": "cat",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_NO_LAZY_FETCH": "1",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_LITERAL_PATHSPECS": "1",
        "GIT_ALLOW_PROTOCOL": "",
        "GIT_PROTOCOL_FROM_USER": "0",
    }
    return env


def find_git_dir(root: Path) -> Path:
    """The repository directory for root; refuse a .git that leads outside the root."""
    dot_git = root / ".git"
    if not os.path.lexists(dot_git):
        raise GitError(f"{str(root)!r} is not a git repository (no .git); git tools need one")
    target = Path(os.path.realpath(dot_git))
    if dot_git.is_file() and not dot_git.is_symlink():
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if not text.startswith("gitdir:"):
            raise GitError(f"{str(dot_git)!r} is a file but not a 'gitdir:' pointer")
        pointed = Path(text.removeprefix("gitdir:").strip())
        target = Path(os.path.realpath(root / pointed))
    if not (target == root or target.is_relative_to(root)):
        raise GitError(
            f"{str(dot_git)!r} points to {str(target)!r}, outside the workspace root; "
            "such repositories are refused because their config and hooks are not the project's"
        )
    if not target.is_dir():
        raise GitError(f"{str(dot_git)!r} does not lead to a git directory")
    return target


def check_ref_text(value: str, what: str = "revision") -> str:
    """Refuse option-looking or malformed revision text before git sees it."""
    if not isinstance(value, str) or not value:
        raise GitError(f"{what} must be a non-empty string")
    if value.startswith("-"):
        raise GitError(f"{what} {value!r} starts with '-'; options are not accepted where a {what} belongs")
    if any(ord(c) < 32 or c == "\x7f" for c in value) or len(value) > 256:
        raise GitError(f"{what} {value!r} contains control characters or is too long")
    return value


def check_date(value: str, what: str) -> str:
    if value.startswith("-") or not _DATE.fullmatch(value):
        raise GitError(
            f"{what} {value!r} is not a date; use e.g. '2026-01-31', '2026-01-31T12:00' or '2 weeks ago'"
        )
    return value


class Git:
    """Runs git for one workspace root."""

    def __init__(self, root: Path | str, timeout_s: float = GIT_TIMEOUT_S) -> None:
        self.root = Path(os.path.realpath(root))
        self.timeout_s = timeout_s
        self._git_dir: Path | None = None
        self._overrides: tuple[float, list[str]] | None = None

    @property
    def git_dir(self) -> Path:
        if self._git_dir is None:
            self._git_dir = find_git_dir(self.root)
        return self._git_dir

    def env(self) -> dict[str, str]:
        return safe_env(self.root, self.git_dir)

    def _config_overrides(self) -> list[str]:
        config = self.git_dir / "config"
        try:
            stamp = config.stat().st_mtime
        except OSError:
            stamp = 0.0
        if self._overrides is not None and self._overrides[0] == stamp:
            return self._overrides[1]
        listed = procs.run_sync(
            ["git", *_prefix(_FIXED_OVERRIDES), "config", "--list", "--name-only"],
            cwd=self.root,
            env=self.env(),
            timeout_s=self.timeout_s,
        )
        names = {n.strip() for n in listed.text().splitlines() if n.strip()}
        fixed = {pair.split("=", 1)[0].lower() for pair in _FIXED_OVERRIDES}
        dynamic = sorted(f"{n}=" for n in names if _PROGRAM_KEY.match(n) and n.lower() not in fixed)
        # An emptied filter is skipped, unless the repository marks it required: unmark it.
        drivers = {n.rsplit(".", 1)[0] for n in names if n.lower().startswith("filter.")}
        dynamic += sorted(f"{d}.required=false" for d in drivers)
        overrides = [*_prefix(_FIXED_OVERRIDES), *_prefix(dynamic)]
        self._overrides = (stamp, overrides)
        return overrides

    def argv(self, args: Sequence[str]) -> list[str]:
        return ["git", *self._config_overrides(), *args]

    async def run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        timeout_s: float | None = None,
        max_output: int = procs.DEFAULT_MAX_OUTPUT,
    ) -> ProcResult:
        result = await procs.run(
            self.argv(args),
            cwd=self.root,
            env=self.env(),
            timeout_s=timeout_s or self.timeout_s,
            max_output=max_output,
            spool=True,  # git's output is bounded by the repository; files beat pipes for big outputs
        )
        return self._checked(args, result, check)

    def run_sync(
        self, args: Sequence[str], *, check: bool = True, timeout_s: float | None = None
    ) -> ProcResult:
        result = procs.run_sync(
            self.argv(args), cwd=self.root, env=self.env(), timeout_s=timeout_s or self.timeout_s
        )
        return self._checked(args, result, check)

    def _checked(self, args: Sequence[str], result: ProcResult, check: bool) -> ProcResult:
        if result.timed_out:
            raise GitError(f"git {args[0]} took longer than {self.timeout_s:.0f}s and was stopped")
        if check and result.returncode != 0:
            message = result.text("stderr").strip().splitlines()
            raise GitError(f"git {args[0]} failed: {message[-1] if message else f'exit {result.returncode}'}")
        return result

    async def verify_rev(self, rev: str, *, what: str = "revision", peel: str = "commit") -> str:
        """The object id `rev` names, after refusing anything that could be read as an option."""
        check_ref_text(rev, what)
        result = await self.run(
            ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{{peel}}}"], check=False
        )
        sha = result.text().strip()
        if result.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40,64}", sha):
            raise GitError(f"{what} {rev!r} does not name a {peel} in this repository")
        return sha

    async def head(self) -> str | None:
        """HEAD's object id, or None when there is no commit yet."""
        result = await self.run(["rev-parse", "--verify", "--quiet", "HEAD"], check=False)
        sha = result.text().strip()
        return sha if result.returncode == 0 and sha else None

    def head_sync(self) -> str | None:
        """HEAD's object id, or None when there is no repository or no commit yet."""
        try:
            result = self.run_sync(["rev-parse", "--verify", "--quiet", "HEAD"], check=False)
        except OnrecordError:
            return None
        sha = result.text().strip()
        return sha if result.returncode == 0 and sha else None


def _prefix(pairs: Sequence[str]) -> list[str]:
    out: list[str] = []
    for pair in pairs:
        out += ["-c", pair]
    return out
