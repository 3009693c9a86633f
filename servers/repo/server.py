"""The repo server: git-aware code context. The only repo module that imports mcp."""

from __future__ import annotations

from common.config import Settings, server_section
from common.server import AccountableServer
from common.tools import READ_ONLY, Tool, register_all
from servers.repo.context import RepoContext

NAME = "repo"
INSTRUCTIONS = (
    "Git-aware context for the repository at the server's root. Start with overview, then list_files, "
    "search, outline and find_symbol to locate code, read_file to read it, and git_log, git_diff, "
    "git_blame and related_files for history. Paths are relative to the root."
)


def register(server: AccountableServer, settings: Settings) -> None:
    """Add the repo tools to `server`: the domain functions, bound to one RepoContext."""
    from servers.repo.settings import RepoSettings

    server_section(settings, NAME, RepoSettings)  # refuses unknown keys in [repo]
    ctx = RepoContext.create(
        settings.root, hidden=settings.protected_paths(), max_tokens=settings.max_result_tokens
    )
    register_all(server, NAME, ctx, table)


def table() -> list[Tool]:
    """The repo tools; their modules are imported when the table is read (common.tools.register_all)."""
    from servers.repo import files, history, overview, search, symbols

    return [
        (overview.overview, READ_ONLY, "Repository overview"),
        (files.list_files, READ_ONLY, "List files"),
        (files.read_file, READ_ONLY, "Read a file"),
        (search.search, READ_ONLY, "Search file contents"),
        (symbols.outline, READ_ONLY, "Outline a file"),
        (symbols.find_symbol, READ_ONLY, "Find a symbol"),
        (history.git_status, READ_ONLY, "Git status"),
        (history.git_diff, READ_ONLY, "Git diff"),
        (history.git_log, READ_ONLY, "Git log"),
        (history.git_show, READ_ONLY, "Show a commit"),
        (history.git_blame, READ_ONLY, "Git blame"),
        (overview.related_files, READ_ONLY, "Related files"),
    ]


def build_server(settings: Settings) -> AccountableServer:
    from servers import build

    return build(NAME, settings)
