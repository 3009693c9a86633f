"""The root a server may touch: path confinement and race-safe opening (DESIGN §7).

Every path argument goes through `Workspace.resolve` or `Workspace.open_file`:
- the text is taken literally: no `~` expansion, no trimming of quotes or spaces, NUL refused;
- it is resolved against the root with symlinks followed, and the result must stay under the root
  (component-wise, so `/srv/app_evil` is not under `/srv/app`);
- opening walks the resolved path one component at a time from a descriptor of the root with
  O_NOFOLLOW, so a component swapped for a symlink after the check is refused, and the opened file
  must be a regular file (FIFOs, sockets and devices are refused without blocking).
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.errors import OnrecordError

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)


class WorkspaceError(OnrecordError):
    """A path is outside the root, not a regular file, or cannot be read."""


@dataclass(frozen=True)
class Resolved:
    """A path argument after confinement."""

    absolute: Path
    relative: str  # posix, "." for the root itself


class Workspace:
    def __init__(self, root: Path | str, hidden: Sequence[Path] = ()) -> None:
        self.root = Path(os.path.realpath(root))
        if not self.root.is_dir():
            raise WorkspaceError(f"workspace root {str(root)!r} is not a directory")
        self.hidden = [Path(os.path.realpath(h)) for h in hidden]

    def _check_text(self, path: object) -> str:
        if not isinstance(path, str):
            raise WorkspaceError(f"path must be a string, got {type(path).__name__}")
        if "\x00" in path:
            raise WorkspaceError(f"path {path!r} contains a NUL byte; pass a plain file path")
        if path == "":
            raise WorkspaceError(
                "path is empty; pass a path relative to the workspace root, e.g. 'src/app.py'"
            )
        return path

    def resolve(self, path: str, *, must_exist: bool = True) -> Resolved:
        """Confine `path` to the root, following symlinks; raise WorkspaceError with the reason."""
        text = self._check_text(path)
        lexical = Path(_lexical(self.root, text))
        if not _within(lexical, self.root):
            raise WorkspaceError(
                f"path {path!r} is outside the workspace root {str(self.root)!r}; "
                "pass a path inside it, relative to the root"
            )
        real = Path(os.path.realpath(lexical))
        if not _within(real, self.root):
            raise WorkspaceError(
                f"path {path!r} is a symlink (or goes through one) that points outside the workspace root "
                f"{str(self.root)!r}; only links that stay inside the root are followed"
            )
        for guarded in self.hidden:
            if _within(real, guarded):
                raise WorkspaceError(
                    f"path {path!r} is inside onrecord's protected state; no tool may read it"
                )
        if must_exist and not os.path.lexists(real):
            if os.path.islink(lexical):
                raise WorkspaceError(f"path {path!r} is a dangling symlink")
            raise WorkspaceError(f"path {path!r} does not exist under the workspace root")
        rel = real.relative_to(self.root)
        return Resolved(real, rel.as_posix() if rel.parts else ".")

    @contextlib.contextmanager
    def _walk_to_parent(self, relative: str) -> Iterator[tuple[int, str]]:
        parts = [] if relative == "." else relative.split("/")
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in parts[:-1]:
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise WorkspaceError(
                        f"path {relative!r} changed while it was being opened ({exc.strerror}); try again"
                    ) from exc
                os.close(fd)
                fd = nxt
            yield fd, (parts[-1] if parts else ".")
        finally:
            os.close(fd)

    def open_file(self, path: str) -> tuple[int, os.stat_result, Resolved]:
        """Open a regular file under the root without following late symlinks; caller closes the fd."""
        resolved = self.resolve(path)
        with self._walk_to_parent(resolved.relative) as (parent, name):
            try:
                fd = os.open(name, _OPEN_FLAGS, dir_fd=parent)
            except OSError as exc:
                raise WorkspaceError(f"path {path!r} cannot be opened: {exc.strerror}") from exc
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise WorkspaceError(
                f"path {path!r} is {_kind(info.st_mode)}, not a regular file; it is not read"
            )
        os.set_blocking(fd, True)
        return fd, info, resolved

    def read_bytes(self, path: str, max_bytes: int) -> tuple[bytes, os.stat_result, Resolved]:
        """Read at most max_bytes of a regular file under the root."""
        fd, info, resolved = self.open_file(path)
        try:
            chunks, remaining = [], max_bytes
            while remaining > 0:
                chunk = os.read(fd, min(remaining, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            return b"".join(chunks), info, resolved
        finally:
            os.close(fd)

    def history_path(self, path: str) -> str:
        """A path inside the repository checked lexically, for a file that may exist only in
        history (read at a git revision): relative, posix, `..` folded and kept inside the root."""
        if not isinstance(path, str) or not path or "\x00" in path:
            raise WorkspaceError(f"path {path!r} must be a non-empty path without NUL bytes")
        if path.startswith("/"):
            return self.resolve(path, must_exist=False).relative
        normal = posixpath.normpath(path)
        if normal == ".." or normal.startswith("../"):
            raise WorkspaceError(
                f"path {path!r} is outside the workspace root {str(self.root)!r}; pass a path inside it"
            )
        return normal

    def is_hidden(self, absolute: Path) -> bool:
        return any(_within(absolute, guarded) for guarded in self.hidden)


def _lexical(root: Path | str, text: str) -> str:
    # An absolute `text` replaces the root, as it should; `..` is folded without following links.
    return os.path.normpath(os.path.join(root, text))


def _relative(root: str, absolute: str) -> str:
    if absolute == root:
        return "."
    if absolute.startswith(root + os.sep):
        return absolute[len(root) + 1 :].replace(os.sep, "/")
    return absolute


def canonical_names(root: Path | str, text: str, *, follow_links: bool = True) -> tuple[str, ...]:
    """The names a path argument goes by under `root`, as the policy matches them: the path as
    written with `..` folded, then (with `follow_links`) the file it reaches through symlinks. Each is
    relative to the root (posix, "." for the root), or absolute when it leaves the root. The same
    folding `Workspace.resolve` confines, so policy and workspace never disagree about a path."""
    if "\x00" in text:
        return (text.replace("\x00", "\\0"),)  # refused by the workspace; matched as text
    if not follow_links and _clean(text):
        return (text,)  # what normpath would give back: the common case for names git listed
    base = str(root)
    lexical = _lexical(base, text)
    names = [_relative(base, lexical)]
    if follow_links:
        real = _relative(base, _realpath(base, lexical))
        if real != names[0]:
            names.append(real)
    return tuple(names)


@functools.lru_cache(maxsize=64)
def _real_root(base: str) -> str:
    # The root's own path: the repository cannot change the folders above its root.
    return os.path.realpath(base)


def _realpath(base: str, lexical: str) -> str:
    """os.path.realpath(lexical), one lstat per component below the root when the root is real and
    no component is a link (the common case); any link or missing part takes the full walk."""
    if _real_root(base) != base or not lexical.startswith(base + "/"):
        return os.path.realpath(lexical)
    path = base
    for part in lexical[len(base) + 1 :].split("/"):
        path = f"{path}/{part}"
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return os.path.realpath(lexical)
        except OSError:
            return os.path.realpath(lexical)
    return path


def _clean(text: str) -> bool:
    """A relative posix path with nothing to fold: no empty, `.` or `..` component."""
    return (
        bool(text)
        and not text.startswith(("/", "./", "../"))
        and not text.endswith(("/", "/.", "/.."))
        and text not in (".", "..")
        and "//" not in text
        and "/./" not in text
        and "/../" not in text
    )


def _within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"
