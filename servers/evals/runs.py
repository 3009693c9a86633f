"""list_runs: the eval store's runs, newest first, a page at a time."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from common import offload
from common.budget import clamp, cursor_position, encode_cursor
from servers.evals.context import EvalsContext
from servers.evals.models import RunList
from servers.evals.params import Cursor
from servers.evals.store import NAME, summary


async def list_runs(
    ctx: EvalsContext,
    name: Annotated[
        str | None, Field(description="Only runs of this name", pattern=NAME, max_length=64)
    ] = None,
    limit: Annotated[int, Field(ge=1, le=200, description="Runs per page")] = 20,
    cursor: Cursor = None,
) -> RunList:
    """Runs in the eval store, newest first: id, name, time, git commit and dirty flag, sample size and
    headline metrics; paginated."""
    limit = clamp(limit, 1, 200, 20)
    offset = cursor_position(cursor, "list_runs", {"name": name})
    runs = await offload.run(ctx.store.all_runs, name)
    page = [summary(r) for r in runs[offset : offset + limit]]
    end = offset + len(page)
    more = end < len(runs)
    return RunList(
        runs=page,
        total=len(runs),
        returned=len(page),
        truncated=more,
        next_cursor=encode_cursor("list_runs", name=name, o=end) if more else None,
        note=f"runs {offset + 1}-{end} of {len(runs)}; pass next_cursor for more" if more else None,
    )
