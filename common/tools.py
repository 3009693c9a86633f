"""Tools as plain functions bound to a context: the function's own signature is the schema."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from mcp.types import ToolAnnotations

if TYPE_CHECKING:
    from common.server import AccountableServer

Tool = tuple[Callable[..., Awaitable[Any]], ToolAnnotations, str]  # function, annotations, title

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
"""Reads and reports; changes nothing, reaches nothing outside the process."""


def bind(fn: Callable[..., Awaitable[Any]], context: object) -> Callable[..., Awaitable[Any]]:
    """`fn` with its first parameter (the server's context) filled in. The rest of its signature,
    with each parameter's `Annotated` type, description and kind, is what the SDK and the policy read."""
    signature = inspect.signature(fn, eval_str=True)
    rest = list(signature.parameters.values())[1:]

    @functools.wraps(fn)
    async def bound(*args: Any, **kwargs: Any) -> Any:
        return await fn(context, *args, **kwargs)

    bound.__signature__ = signature.replace(parameters=rest)  # type: ignore[attr-defined]
    return bound


def register_all(
    server: AccountableServer,
    owner: str,
    context: object,
    table: Iterable[Tool] | Callable[[], Iterable[Tool]],
) -> None:
    """Add a server's tools: each domain function bound to the server's context, named after the
    function, with its annotations and title, structured output, and `owner` as its server.

    `table` may be a function giving the table: when the server answers tools/list from a kept
    listing (common.listing), it is called, and the tools' modules imported, only when one of the
    tools is first used."""
    if callable(table):
        if server.listed_tools(owner):
            read = table

            def tools() -> dict[str, tuple[Callable[..., Any], Any, str]]:
                return {fn.__name__: (bind(fn, context), hints, title) for fn, hints, title in read()}

            server.add_listed(owner, tools)
            return
        table = table()
    for fn, hints, title in table:
        server.add_tool(
            bind(fn, context),
            name=fn.__name__,
            title=title,
            annotations=hints,
            structured_output=True,
            server=owner,
        )
