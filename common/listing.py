"""What `tools/list` says, kept from one start to the next, so a server starts without building tools.

Building a tool (importing its module and result models, the SDK's argument model and output
schema, the lean schemas of common.schema) is most of what a server does at start beyond importing
the SDK, and what it yields for the listing changes only with our source, the installed libraries,
the Python version and the set of servers in the process. `servers.build` keeps the listing in the
state directory under a key made of all of those; on a later start with the same key the server
answers `tools/list` from it and builds each tool for real on its first call, with the same
argument and result validation as ever. The policy reads a tool's kinds and annotations from the
built tool, never from the file.

Each key has its own file (`<serve name>-<key prefix>.json`), so two checkouts or two installed
versions sharing one state directory do not overwrite each other's listing on every start. A start
that uses a listing marks it used (its mtime); a start that writes one removes the least recently
used listings of the same serve name beyond KEEP.

The file is a convenience, never trusted: one that is missing, unreadable, oversized, not a regular
file, not the user's own, writable by others, malformed or written under another key is ignored
and written again; a tool whose real build disagrees with what the file listed removes the file, so
the next start builds cold (AccountableServer). Pruning acts only in a listing folder that is the
user's own and not writable by others, never follows a link, and removes only entries named as a
listing of that serve name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mcp.server.mcpserver.tools import ToolManager
from mcp.server.mcpserver.tools.base import Tool as SDKTool

log = logging.getLogger("onrecord")

FORMAT = 1
MAX_BYTES = 4 << 20  # a listing of every server is about 100 KB
KEEP = 8  # listings kept per serve name: one per checkout or installed version sharing the state
KEY_CHARS = 16  # of the key's hex digest in a file's name (the file holds the whole key)
_NAMED = re.compile(rf"(?P<name>[a-z0-9_]+)-[0-9a-f]{{{KEY_CHARS}}}\.json")
_SOURCE = Path(__file__).resolve().parent.parent  # holds common/ and servers/
_LIBRARIES = ("pydantic", "pydantic_core", "mcp", "mcp_types")

Entry = tuple[str, dict[str, Any]]  # the owning server, the tool as tools/list gives it


def path(state_dir: Path, name: str, key_: str) -> Path:
    """The listing file of serve name `name` under key `key_`."""
    return state_dir / "listing" / f"{name}-{key_[:KEY_CHARS]}.json"


def key(names: Sequence[str]) -> str:
    """Everything a listing could change with: the servers in the process, the Python version, the
    installed distributions beside the libraries that build schemas, and our source files' content."""
    digest = hashlib.sha256(f"onrecord-listing/{FORMAT}\0{sys.version}\0{','.join(names)}\0".encode())
    sites = sorted({Path(sys.modules[m].__file__ or "").resolve().parent.parent for m in _LIBRARIES})
    for site in sites:
        with contextlib.suppress(OSError):
            found = sorted(n for n in os.listdir(site) if n.endswith(".dist-info"))
            digest.update(f"{site}\0{','.join(found)}\0".encode())
    for source in _sources():
        data = source.read_bytes()
        digest.update(f"{source.relative_to(_SOURCE)}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _sources() -> list[Path]:
    found: list[Path] = []
    for top in ("common", "servers"):
        for folder, dirs, files in os.walk(_SOURCE / top):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            found += [Path(folder) / f for f in files if f.endswith(".py")]
    return sorted(found)


def _ours(info: os.stat_result) -> bool:
    """Whether a file could be a listing we wrote: regular, the user's own, writable by nobody
    else, and no larger than a listing can be."""
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_uid == os.getuid()
        and not info.st_mode & 0o022
        and info.st_size <= MAX_BYTES
    )


def load(file: Path, expected: str) -> list[Entry] | None:
    """The entries of a listing file written under key `expected`, or None for any other file. A
    listing used is marked so (its mtime), for `prune`."""
    folder = _open_folder(file.parent)
    if folder is None:
        return None
    try:
        # O_NONBLOCK: opening a FIFO left at this path must not wait for a writer (it is then refused below).
        fd = os.open(file.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except OSError:
        return None
    finally:
        os.close(folder)
    try:
        if not _ours(os.fstat(fd)):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        entries = _entries(data, expected)
        if entries is not None:
            with contextlib.suppress(OSError):
                os.utime(fd)  # the file opened and checked above, never what the path names now
        return entries
    except OSError:
        return None
    finally:
        os.close(fd)


def _entries(data: bytes, expected: str) -> list[Entry] | None:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("key") != expected:
        return None
    tools = document.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    entries: list[Entry] = []
    for item in tools:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], dict)
            and isinstance(item[1].get("name"), str)
        ):
            return None
        entries.append((item[0], item[1]))
    return entries


def save(file: Path, key_: str, entries: Sequence[Entry]) -> None:
    """Write a listing atomically, readable by the user only; a failure only costs the next start."""
    text = json.dumps(
        {"format": FORMAT, "key": key_, "tools": [list(e) for e in entries]}, ensure_ascii=False
    )
    temporary = f".{file.name}.{os.getpid()}.tmp"
    try:
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        log.debug("could not make the tool listing folder %s: %s", file.parent, exc)
        return
    folder = _open_folder(file.parent)
    if folder is None:
        return
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o600, dir_fd=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, file.name, src_dir_fd=folder, dst_dir_fd=folder)
    except OSError as exc:
        log.debug("could not write the tool listing %s: %s", file, exc)
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=folder)
        return
    finally:
        os.close(folder)
    prune(file)


def prune(file: Path, keep: int = KEEP) -> None:
    """Keep at most `keep` listings of the serve name `file` is for: `file` and the most recently
    used others. An entry under such a name that could not be a listing of ours (a link, a FIFO, a
    file of another user or writable by others, an oversized one) is removed too: no start would
    use it. Nothing is done in a folder that is not the user's own or that others may write, and
    nothing outside the folder is touched (no link is followed)."""
    named = _NAMED.fullmatch(file.name)
    if named is None:
        return
    prefix = named.group("name") + "-"
    folder = _open_folder(file.parent)
    if folder is None:
        return
    try:
        used: list[tuple[int, str]] = []
        hostile: list[str] = []
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name == file.name or not (
                    entry.name.startswith(prefix) and _NAMED.fullmatch(entry.name)
                ):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if _ours(st):
                    used.append((st.st_mtime_ns, entry.name))
                else:
                    hostile.append(entry.name)
        used.sort(reverse=True)
        for name in [*hostile, *(n for _, n in used[max(keep - 1, 0) :])]:
            with contextlib.suppress(OSError):  # gone meanwhile, or a folder: left alone
                os.unlink(name, dir_fd=folder)
    except OSError as exc:
        log.debug("could not prune the tool listings beside %s: %s", file, exc)
    finally:
        os.close(folder)


def drop(file: Path) -> None:
    folder = _open_folder(file.parent)
    if folder is None:
        return
    try:
        with contextlib.suppress(OSError):
            os.unlink(file.name, dir_fd=folder)
    finally:
        os.close(folder)


def _open_folder(folder: Path) -> int | None:
    """A descriptor of the listing folder, or None unless it is a real directory (not a link) of
    the user's own that others may not write: every listing file is opened, written, replaced and
    removed through it, so nothing outside the folder is ever reached."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        os.close(fd)
        return None
    return fd


def covers(built: Any, listed: Any) -> bool:
    """Whether `listed` is `built` with at most some descriptions left out (common.schema.say_once
    leaves out a description an earlier tool's output schema already gave)."""
    if isinstance(built, dict) and isinstance(listed, dict):
        if not listed.keys() <= built.keys() or not (built.keys() - listed.keys()) <= {"description"}:
            return False
        return all(covers(built[k], v) for k, v in listed.items())
    if isinstance(built, list) and isinstance(listed, list):
        return len(built) == len(listed) and all(covers(b, v) for b, v in zip(built, listed, strict=True))
    return type(built) is type(listed) and built == listed


class LazyTools(ToolManager):
    """The SDK's tool manager, building a tool that a kept listing promised when it is first looked up."""

    def __init__(self, build: Callable[[str], None], *, warn_on_duplicate_tools: bool = True) -> None:
        super().__init__(warn_on_duplicate_tools)
        self.pending: set[str] = set()
        self._build = build

    def get_tool(self, name: str) -> SDKTool | None:
        tool = self._tools.get(name)
        if tool is None and name in self.pending:
            self._build(name)
            tool = self._tools.get(name)
        return tool
