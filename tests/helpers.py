"""Shared test helpers: projects, settings, servers and audit records."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from mcp.types import CallToolResult, TextContent

from common.config import Settings, load_settings
from common.server import AccountableServer
from servers import SERVERS

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}


def git(root: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    out = subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)
    return out.stdout.decode("utf-8", errors="replace")


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")


def make_repo(root: Path, files: dict[str, str | bytes], message: str = "initial") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write(root, files)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return root


def commit(root: Path, files: dict[str, str | bytes], message: str) -> str:
    write(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def settings_for(
    root: Path, policy: str | None = None, *, tmp: Path | None = None, **overrides: Any
) -> Settings:
    policy_file = None
    if policy is not None:
        policy_file = (tmp or root.parent) / f"policy-{abs(hash(policy))}.toml"
        policy_file.write_text(textwrap.dedent(policy), encoding="utf-8")
    settings = load_settings(root, policy_file=policy_file, sections=SERVERS)
    for key, value in overrides.items():
        setattr(settings, key, value)
    return settings


def first_text(result: CallToolResult) -> str:
    """The text of a result's first block (tool results here are always text)."""
    block = result.content[0]
    assert isinstance(block, TextContent), block
    return block.text


def records(server: AccountableServer) -> list[dict[str, Any]]:
    """Every record the server has written so far."""
    if server.audit.path is None:
        return []
    return [json.loads(line) for line in server.audit.path.read_text(encoding="utf-8").splitlines()]


def of_type(server: AccountableServer, kind: str) -> list[dict[str, Any]]:
    return [r for r in records(server) if r["type"] == kind]


def all_audit_text(state: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(state.rglob("*.jsonl")))


def ok(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error is False, first_text(result) if result.content else result
    assert result.structured_content is not None
    return result.structured_content


def err(result: CallToolResult) -> str:
    assert result.is_error is True, result.structured_content
    return first_text(result)
