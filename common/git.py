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
from dataclasses import dataclass
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


def safe_env(work_tree: Path, git_dir: Path) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(git_dir),  # never the user's: no ~/.gitconfig, no credential stores
        "LC_ALL": "C",
        "GIT_DIR": str(git_dir),
        "GIT_WORK_TREE": str(work_tree),
        "GIT_CEILING_DIRECTORIES": str(work_tree.parent),
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


@dataclass(frozen=True)
class Layout:
    """Where a root's repository lives: its git directory, the top of its work tree, and the root's
    place inside that work tree ("" when the root is the top)."""

    git_dir: Path
    work_tree: Path
    prefix: str = ""


def find_layout(root: Path) -> Layout:
    """The repository for `root`: its own `.git`, or the one of a repository it lies inside.

    A `.git` file is followed only when git's own back-link confirms it: a linked worktree's admin
    directory names this `.git` in its `gitdir` file; a submodule's names this folder as
    `core.worktree`. A `commondir` or `objects/info/alternates` that leads outside is refused, as is
    any other `.git` file pointing elsewhere, with a message naming the path."""
    top = root
    while not os.path.lexists(top / ".git"):
        if top.parent == top:
            raise GitError(f"{str(root)!r} is not a git repository (no .git); git tools need one")
        top = top.parent
    dot_git = top / ".git"
    if os.path.islink(dot_git):
        target = Path(os.path.realpath(dot_git))
        if not _inside(target, top):
            raise GitError(
                f"{str(dot_git)!r} is a link to {str(target)!r}, outside the repository; "
                "such repositories are refused because their config and hooks are not the project's"
            )
        git_dir = target
    elif dot_git.is_file():
        git_dir = _followed(dot_git, top)
    else:
        git_dir = dot_git
    if not git_dir.is_dir():
        raise GitError(f"{str(dot_git)!r} does not lead to a git directory")
    _check_redirections(git_dir, top)
    prefix = "" if top == root else root.relative_to(top).as_posix()
    return Layout(git_dir, top, prefix)


def _followed(dot_git: Path, top: Path) -> Path:
    text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
    if not text.startswith("gitdir:"):
        raise GitError(f"{str(dot_git)!r} is a file but not a 'gitdir:' pointer")
    admin = Path(os.path.realpath(top / text.removeprefix("gitdir:").strip()))
    if _inside(admin, top):
        return admin
    # A linked worktree: its admin directory's `gitdir` names this .git file.
    back = admin / "gitdir"
    if back.is_file():
        named = back.read_text(encoding="utf-8", errors="replace").strip()
        if os.path.realpath(admin / named) == os.path.realpath(dot_git):
            return admin
    # A submodule: its admin directory's config names this folder as the work tree.
    config = admin / "config"
    if config.is_file():
        found = re.search(
            r"^\s*worktree\s*=\s*(.+?)\s*$",
            config.read_text(encoding="utf-8", errors="replace"),
            re.MULTILINE,
        )
        if found and os.path.realpath(admin / found.group(1)) == str(top):
            return admin
    raise GitError(
        f"{str(dot_git)!r} points to {str(admin)!r}, outside the workspace root, and git's own "
        "back-link does not confirm it (a linked worktree's or submodule's admin directory names its "
        "work tree); such repositories are refused because their config and hooks are not the project's"
    )


def _check_redirections(git_dir: Path, top: Path) -> None:
    """Refuse a commondir or alternates that borrow another repository's objects and refs."""
    common = git_dir
    commondir = git_dir / "commondir"
    if commondir.is_file():
        common = Path(
            os.path.realpath(git_dir / commondir.read_text(encoding="utf-8", errors="replace").strip())
        )
        is_worktree_admin = (git_dir / "gitdir").is_file() and git_dir.parent.name == "worktrees"
        if not (_inside(common, top) or (is_worktree_admin and git_dir.parent.parent == common)):
            raise GitError(
                f"{str(commondir)!r} names {str(common)!r}, another repository; refused: git would show that "
                "repository's history as this one's"
            )
    for objects in {git_dir / "objects", common / "objects"}:
        alternates = objects / "info" / "alternates"
        if not alternates.is_file():
            continue
        for line in alternates.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            target = Path(os.path.realpath(objects / line))
            if not (_inside(target, top) or _inside(target, common)):
                raise GitError(
                    f"{str(alternates)!r} borrows objects from {str(target)!r}, outside the repository; "
                    "refused: its history would be shown as this one's"
                )


def _inside(path: Path, top: Path) -> bool:
    return path == top or path.is_relative_to(top)


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
        self._layout: Layout | None = None
        self._overrides: tuple[float, list[str]] | None = None

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = find_layout(self.root)
        return self._layout

    @property
    def git_dir(self) -> Path:
        return self.layout.git_dir

    @property
    def prefix(self) -> str:
        """Where the root sits in the repository's work tree ("" at the top)."""
        return self.layout.prefix

    def env(self) -> dict[str, str]:
        return safe_env(self.layout.work_tree, self.git_dir)

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
        if (excludes := user_excludes_file()) is not None:
            overrides += ["-c", f"core.excludesFile={excludes}"]
        self._overrides = (stamp, overrides)
        return overrides

    def argv(self, args: Sequence[str]) -> list[str]:
        return ["git", *self._config_overrides(), *_confined(list(args), self.prefix)]

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


_RELATIVE = frozenset({"diff", "log", "show", "diff-tree"})
_OBJECT_PATH = re.compile(r"^([0-9a-f]{40,64}):(?!\./)(.+)$")


def _confined(args: list[str], prefix: str) -> list[str]:
    """git arguments for a root inside a repository: diffs, logs and status see only the root's
    subtree, with paths relative to it (git runs with the root as its working directory)."""
    if not prefix or not args:
        return args
    command = args[0]
    if command in _RELATIVE:
        args = [command, "--relative", *args[1:]]
        if command == "log" and "--" not in args:
            args += ["--", "."]
    elif command == "status" and "--" not in args:
        args += ["--", "."]
    elif command == "cat-file":
        args = [_OBJECT_PATH.sub(r"\1:./\2", a) for a in args]
    return args


def user_excludes_file() -> Path | None:
    """The user's global ignore file, found as git finds it, without running git on the user's
    config: `core.excludesFile` read from ~/.gitconfig alone (no includes), else
    $XDG_CONFIG_HOME/git/ignore or ~/.config/git/ignore. Only a regular file counts."""
    home = Path.home()
    configured: str | None = None
    gitconfig = home / ".gitconfig"
    if gitconfig.is_file():
        result = procs.run_sync(
            ["git", "config", "--file", str(gitconfig), "--get", "core.excludesFile"],
            cwd=home,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CONFIG_NOSYSTEM": "1"},
            timeout_s=5,
        )
        configured = result.text().strip() or None
    if configured:
        candidate = Path(os.path.expanduser(configured))
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
        candidate = Path(base) / "git" / "ignore"
    return candidate if candidate.is_file() else None


def _prefix(pairs: Sequence[str]) -> list[str]:
    out: list[str] = []
    for pair in pairs:
        out += ["-c", pair]
    return out
