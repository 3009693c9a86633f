"""The evals server: metrics from predictions, runs tied to commits, gates, model endpoints.
The only evals module that imports mcp."""

from __future__ import annotations

from mcp.types import ToolAnnotations

from common.config import Settings, server_section
from common.server import AccountableServer
from common.tools import READ_ONLY, Tool, register_all

NAME = "evals"
INSTRUCTIONS = (
    "Model evaluation: evaluate_predictions computes metrics with bootstrap intervals from a prediction "
    "file and records a run (git HEAD and dirty flag) in the root's eval store; record_run records metrics "
    "computed elsewhere; list_runs pages through runs; compare_runs compares two runs (ids or name@<git ref>), "
    "paired by item when it can; check_gates says pass, fail, improved or inconclusive per gate; "
    "evaluate_endpoint scores a model endpoint (allowed hosts only) over a dataset, resuming from its cache."
)
# Records a run: a new file in the eval store, never an overwrite or a delete.
RECORDS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
# Calls a model endpoint outside the process (open world) and records a run.
CALLS_OUT = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
)


def register(server: AccountableServer, settings: Settings) -> None:
    """Add the evals tools to `server`: the domain functions, bound to one EvalsContext."""
    from servers.evals.context import EvalsContext
    from servers.evals.settings import EvalsSettings

    options = server_section(settings, NAME, EvalsSettings)
    ctx = EvalsContext.create(
        settings.root, options, hidden=settings.protected_paths(), max_tokens=settings.max_result_tokens
    )
    register_all(server, NAME, ctx, table)


def table() -> list[Tool]:
    """The evals tools; their modules are imported when the table is read (common.tools.register_all)."""
    from servers.evals import compare, endpoint, evaluate, runs

    return [
        (evaluate.evaluate_predictions, RECORDS, "Evaluate predictions"),
        (evaluate.record_run, RECORDS, "Record an eval run"),
        (runs.list_runs, READ_ONLY, "List eval runs"),
        (compare.compare_runs, READ_ONLY, "Compare two eval runs"),
        (compare.check_gates, READ_ONLY, "Check eval gates"),
        (endpoint.evaluate_endpoint, CALLS_OUT, "Evaluate a model endpoint"),
    ]


def build_server(settings: Settings) -> AccountableServer:
    from servers import build

    return build(NAME, settings)
