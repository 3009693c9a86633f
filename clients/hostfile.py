"""Reading and editing a host's config file without losing what else it holds.

Edits merge: other servers and every key onrecord does not know stay as they were. A JSON file is
parsed as JSONC (VS Code's and Cursor's own format); trailing commas are accepted, but a file with
comments is refused, because rewriting it would drop them. A TOML file (Codex) is edited as text:
only onrecord's own tables are cut out and appended, so comments and layout elsewhere survive, and
the result is parsed back to prove nothing else changed. Writes are atomic (a temporary file in the
same directory, then a rename), keep the file's mode, follow a symlinked file to its target, and
back up the previous version next to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.hosts import ENTRY_PREFIX, Host
from common.errors import OnrecordError


class HostFileError(OnrecordError):
    """A host's config file cannot be read, or cannot be edited without losing something."""


@dataclass(frozen=True)
class Change:
    """A planned edit of one file: its text before (None when it does not exist) and after."""

    path: Path
    before: str | None
    after: str
    changed: bool


def read_servers(host: Host, path: Path) -> dict[str, Any]:
    """The file's server table (empty when the file does not exist)."""
    text = _read(path)
    if text is None:
        return {}
    return _servers(host, path, _parse(host, path, text))


def plan_install(host: Host, path: Path, entries: dict[str, dict[str, Any]]) -> Change:
    """The file with `entries` added or replaced, everything else kept."""
    before = _read(path)
    doc = _parse(host, path, before) if before is not None else {}
    current = _servers(host, path, doc)
    if all(current.get(name) == entry for name, entry in entries.items()) and before is not None:
        return Change(path, before, before, changed=False)
    merged = {**current, **entries}
    return _plan(host, path, before, doc, merged, replaced=list(entries))


def plan_uninstall(host: Host, path: Path) -> tuple[Change, list[str]]:
    """The file without onrecord's entries, and the names removed."""
    before = _read(path)
    if before is None:
        return Change(path, None, "", changed=False), []
    doc = _parse(host, path, before)
    current = _servers(host, path, doc)
    ours = [name for name in current if name.startswith(ENTRY_PREFIX)]
    if not ours:
        return Change(path, before, before, changed=False), []
    kept = {name: entry for name, entry in current.items() if name not in ours}
    return _plan(host, path, before, doc, kept, replaced=ours), ours


def apply(change: Change) -> Path | None:
    """Write the change; return the backup of the previous file, if there was one."""
    real = change.path.resolve()
    backup = None
    if change.before is not None and real.exists():
        backup = _backup(real)
    _write_atomic(real, change.after)
    return backup


# ------------------------------------------------------------------------------------------- JSON


def _plan(
    host: Host,
    path: Path,
    before: str | None,
    doc: dict[str, Any],
    servers: dict[str, Any],
    replaced: list[str],
) -> Change:
    if host.format == "toml":
        after = _toml_with(path, before or "", doc, servers, replaced)
    else:
        new_doc = {**doc, host.key: servers}
        after = json.dumps(new_doc, indent=_indent(before), ensure_ascii=False) + "\n"
    return Change(path, before, after, changed=after != before)


def _parse(host: Host, path: Path, text: str) -> dict[str, Any]:
    if host.format == "toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise HostFileError(f"{path}: not valid TOML ({exc}); fix it, then run again") from exc
    clean, comments = strip_jsonc(text)
    if comments:
        raise HostFileError(
            f"{path} has comments, which rewriting it would lose; remove them (or add onrecord's "
            "entries by hand: `--dry-run` prints them), then run again"
        )
    try:
        doc = json.loads(clean) if clean.strip() else {}
    except json.JSONDecodeError as exc:
        raise HostFileError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); fix it, then run again"
        ) from exc
    if not isinstance(doc, dict):
        raise HostFileError(f"{path}: expected a JSON object at the top, found {type(doc).__name__}")
    return doc


def _servers(host: Host, path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    servers = doc.get(host.key, {})
    if not isinstance(servers, dict):
        raise HostFileError(
            f"{path}: {host.key!r} is a {type(servers).__name__}, not a table of servers; fix it, then run again"
        )
    return servers


def strip_jsonc(text: str) -> tuple[str, bool]:
    """JSON text from JSONC: comments blanked out, trailing commas dropped; and whether there were
    comments. Strings are skipped whole, so `"http://x"` is not a comment."""
    out: list[str] = []
    comments = False
    i, n = 0, len(text)
    if text.startswith("\ufeff"):
        i = 1
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            comments = True
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            comments = True
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        elif c == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            # A trailing comma (only whitespace and comments before the closing bracket) is dropped.
            if (j < n and text[j] in "}]") or (
                text[j : j + 2] in ("//", "/*") and _closes_after_comments(text, j)
            ):
                i += 1
                continue
            out.append(c)
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out), comments


def _closes_after_comments(text: str, i: int) -> bool:
    """Whether only whitespace and comments stand between position i and a closing bracket."""
    n = len(text)
    while i < n:
        if text[i] in " \t\r\n":
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            return text[i] in "}]"
    return False


def _indent(before: str | None) -> int | str:
    """The file's own indentation, so a rewrite changes as few lines as it can."""
    if before and (m := re.search(r"\n([ \t]+)\S", before)):
        return "\t" if m.group(1).startswith("\t") else len(m.group(1))
    return 2


# ------------------------------------------------------------------------------------------- TOML

_HEADER = re.compile(r"^\s*\[")


def _toml_with(
    path: Path, before: str, doc: dict[str, Any], servers: dict[str, Any], replaced: list[str]
) -> str:
    """`before` with the tables of `replaced` servers cut out and those still in `servers` appended."""
    if not replaced:
        return before
    ours = re.compile(
        r"^\s*\[\s*mcp_servers\s*\.\s*(\"?)(" + "|".join(re.escape(n) for n in replaced) + r")\1\s*[\].]"
    )
    kept: list[str] = []
    skipping = False
    for line in before.splitlines(keepends=True):
        if _HEADER.match(line):
            skipping = bool(ours.match(line))
        if not skipping:
            kept.append(line)
    text = "".join(kept).rstrip("\n")
    for name in replaced:
        if name in servers:
            text += ("\n\n" if text else "") + _toml_table(name, servers[name])
    text = text + "\n" if text else ""
    try:
        result: dict[str, Any] | None = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        result = None
    if result is None or _without_empty_servers(result) != _without_empty_servers(
        {**doc, "mcp_servers": servers}
    ):
        raise HostFileError(
            f"{path}: onrecord's servers are written there in a form it cannot edit safely (not as "
            "[mcp_servers.NAME] tables); edit them by hand (`--dry-run` prints the entries), then run again"
        )
    return text


def _without_empty_servers(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not (k == "mcp_servers" and v == {})}


def _toml_table(name: str, entry: dict[str, Any]) -> str:
    lines = [f"[mcp_servers.{name}]"]
    for key, value in entry.items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


# ------------------------------------------------------------------------------------------- files


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise HostFileError(f"{path}: not UTF-8 text ({exc.reason}); fix it, then run again") from exc
    except OSError as exc:
        raise HostFileError(f"{path}: cannot read ({exc.strerror})") from exc


def _backup(real: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = real.with_name(f"{real.name}.onrecord-{stamp}.bak")
    n = 1
    while backup.exists():
        n += 1
        backup = real.with_name(f"{real.name}.onrecord-{stamp}-{n}.bak")
    shutil.copy2(real, backup)
    return backup


def _write_atomic(real: Path, text: str) -> None:
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        mode = stat.S_IMODE(real.stat().st_mode) if real.exists() else _new_file_mode()
        fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    except OSError as exc:
        raise HostFileError(f"{real}: cannot write ({exc.strerror})") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
