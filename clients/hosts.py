"""Where each host keeps its MCP servers, and the shape of one entry (README 'Using it from a host').

    host            user file                                        project file             key
    claude-desktop  <config dir>/Claude/claude_desktop_config.json   -                        mcpServers
    claude-code     ~/.claude.json                                   .mcp.json                mcpServers
    vscode          <config dir>/Code/User/mcp.json                  .vscode/mcp.json         servers
    cursor          ~/.cursor/mcp.json                               .cursor/mcp.json         mcpServers
    codex           $CODEX_HOME/config.toml (~/.codex/config.toml)   -                        [mcp_servers.NAME]
    gemini          ~/.gemini/settings.json                          .gemini/settings.json    mcpServers

<config dir> is ~/Library/Application Support on macOS, %APPDATA% on Windows, and
$XDG_CONFIG_HOME (~/.config) elsewhere. A project file is committed and shared, so it names the
command on PATH and the project through the host's own variable, never one machine's paths.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from clients.probe import Launch

Scope = Literal["user", "project"]
Format = Literal["json", "toml"]
ENTRY_PREFIX = "onrecord-"
# Codex waits 10 s for a server to start by default; the SDK's import alone takes 1 s on a quiet machine.
CODEX_STARTUP_TIMEOUT_S = 30


def _config_dir() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


@dataclass(frozen=True)
class Host:
    """One host's file locations and entry shape."""

    name: str
    title: str
    format: Format
    key: str
    user_file: Callable[[], Path]
    project_file: str | None = None
    # How a project file names the project directory, in the host's own variable syntax.
    project_root: str = "."
    stdio_type: bool = False  # the entry says "type": "stdio"
    timeout: Literal["none", "codex", "gemini"] = "none"

    def path(self, scope: Scope, project: Path) -> Path:
        if scope == "project":
            if self.project_file is None:
                raise ValueError(f"{self.name} has no project file")
            return project / self.project_file
        return self.user_file()

    def entry(
        self, command: str, args: list[str], env: dict[str, str], tool_timeout_s: int
    ) -> dict[str, Any]:
        """One server's entry as this host documents it."""
        entry: dict[str, Any] = {"type": "stdio"} if self.stdio_type else {}
        entry |= {"command": command, "args": args}
        if env:
            entry["env"] = env
        if self.timeout == "codex":
            entry["startup_timeout_sec"] = CODEX_STARTUP_TIMEOUT_S
            entry["tool_timeout_sec"] = tool_timeout_s
        elif self.timeout == "gemini":
            entry["timeout"] = tool_timeout_s * 1000  # milliseconds
        return entry

    def launch(self, name: str, entry: dict[str, Any], project: Path | None) -> Launch:
        """The process this host starts for `entry`: its variables expanded, in the project directory
        for a project file (hosts start project servers there), else in the home directory."""

        def expand(value: str) -> str:
            if project is None:
                return value
            for variable in ("${CLAUDE_PROJECT_DIR:-.}", "${CLAUDE_PROJECT_DIR}", "${workspaceFolder}"):
                value = value.replace(variable, str(project))
            return value

        raw_env = entry.get("env")
        env = {str(k): expand(str(v)) for k, v in raw_env.items()} if isinstance(raw_env, dict) else {}
        raw_args = entry.get("args")
        args = [expand(str(a)) for a in raw_args] if isinstance(raw_args, list) else []
        return Launch(
            name=name,
            command=expand(str(entry.get("command", ""))),
            args=args,
            env=env,
            cwd=project if project is not None else Path.home(),
        )


HOSTS: dict[str, Host] = {
    h.name: h
    for h in (
        Host(
            "claude-desktop",
            "Claude Desktop",
            "json",
            "mcpServers",
            lambda: _config_dir() / "Claude" / "claude_desktop_config.json",
        ),
        Host(
            "claude-code",
            "Claude Code",
            "json",
            "mcpServers",
            lambda: Path.home() / ".claude.json",
            project_file=".mcp.json",
            project_root="${CLAUDE_PROJECT_DIR:-.}",
            stdio_type=True,
        ),
        Host(
            "vscode",
            "VS Code",
            "json",
            "servers",
            lambda: _config_dir() / "Code" / "User" / "mcp.json",
            project_file=".vscode/mcp.json",
            project_root="${workspaceFolder}",
            stdio_type=True,
        ),
        Host(
            "cursor",
            "Cursor",
            "json",
            "mcpServers",
            lambda: Path.home() / ".cursor" / "mcp.json",
            project_file=".cursor/mcp.json",
            project_root="${workspaceFolder}",
        ),
        Host(
            "codex",
            "Codex CLI",
            "toml",
            "mcp_servers",
            lambda: Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex") / "config.toml",
            timeout="codex",
        ),
        Host(
            "gemini",
            "Gemini CLI",
            "json",
            "mcpServers",
            lambda: Path.home() / ".gemini" / "settings.json",
            # Gemini CLI starts servers in the directory it runs in, the project's.
            project_file=".gemini/settings.json",
            timeout="gemini",
        ),
    )
}
