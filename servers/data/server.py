"""The data server: profile datasets and run sandboxed read-only SQL. The only data module that
imports mcp."""

from __future__ import annotations

from common.config import Settings, server_section
from common.server import AccountableServer
from common.tools import READ_ONLY, Tool, register_all

NAME = "data"
INSTRUCTIONS = (
    "Understands the datasets (CSV, TSV, Parquet, JSON, JSONL, gzipped) under the server's root. Start with "
    "list_datasets, then describe_dataset for columns and format, profile_dataset for quality (statistics and "
    "alerts), check_dataset for rules, compare_datasets for drift (also between git revisions with `ref`), "
    "and query for read-only DuckDB SQL naming files by string literal, e.g. SELECT * FROM 'data/a.csv'."
)


def register(server: AccountableServer, settings: Settings) -> None:
    """Add the data tools to `server`: the domain functions, bound to one DataContext."""
    from servers.data.context import DataContext
    from servers.data.settings import DataSettings

    options = server_section(settings, NAME, DataSettings)
    ctx = DataContext.create(
        settings.root,
        hidden=settings.protected_paths(),
        options=options,
        max_tokens=settings.max_result_tokens,
    )
    register_all(server, NAME, ctx, table)


def table() -> list[Tool]:
    """The data tools; their modules are imported when the table is read (common.tools.register_all)."""
    from servers.data import checks, compare, profile, tools

    return [
        (tools.list_datasets, READ_ONLY, "List datasets"),
        (tools.describe_dataset, READ_ONLY, "Describe a dataset"),
        (profile.profile_dataset, READ_ONLY, "Profile a dataset"),
        (checks.check_dataset, READ_ONLY, "Check a dataset against rules"),
        (compare.compare_datasets, READ_ONLY, "Compare two datasets"),
        (tools.query, READ_ONLY, "Query datasets with SQL"),
    ]


def build_server(settings: Settings) -> AccountableServer:
    from servers import build

    return build(NAME, settings)
