"""The repo server: git-aware code context. The only repo module that imports mcp."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.types import ToolAnnotations

from common.config import Settings, server_section
from common.server import AccountableServer
from common.tools import bind
from servers.repo.context import RepoContext

NAME = "repo"
INSTRUCTIONS = (
    "Git-aware context for the repository at the server's root. Start with overview, then list_files, "
    "search, outline and find_symbol to locate code, read_file to read it, and git_log, git_diff, "
    "git_blame and related_files for history. Paths are relative to the root. Every result is bounded: "
    "when `truncated` is true, `note` says what was left out and `next_cursor` / `next_start_line` get more."
)
READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


def register(server: AccountableServer, settings: Settings) -> None:
    """Add the repo tools to `server`: the domain functions, bound to one RepoContext."""
    from servers.repo import files, history, overview, search, symbols
    from servers.repo.settings import RepoSettings

    server_section(settings, NAME, RepoSettings)  # refuses unknown keys in [repo]
    ctx = RepoContext.create(
        settings.root, hidden=settings.protected_paths(), max_tokens=settings.max_result_tokens
    )
    tools: list[tuple[Callable[..., Awaitable[Any]], str, str]] = [
        (overview.overview, "overview", "Repository overview"),
        (files.list_files, "list_files", "List files"),
        (files.read_file, "read_file", "Read a file"),
        (search.search, "search", "Search file contents"),
        (symbols.outline, "outline", "Outline a file"),
        (symbols.find_symbol, "find_symbol", "Find a symbol"),
        (history.git_status, "git_status", "Git status"),
        (history.git_diff, "git_diff", "Git diff"),
        (history.git_log, "git_log", "Git log"),
        (history.git_show, "git_show", "Show a commit"),
        (history.git_blame, "git_blame", "Git blame"),
        (overview.related_files, "related_files", "Related files"),
    ]
    for fn, name, title in tools:
        server.add_tool(
            bind(fn, ctx), name=name, title=title, annotations=READ_ONLY, structured_output=True, server=NAME
        )


def build_server(settings: Settings) -> AccountableServer:
    from servers import build

    return build(NAME, settings)
