"""Every request gets an answer: malformed lines on stdio are replied to, never dropped (DESIGN §7).

The SDK's stdio transport hands a line it cannot parse to the server as an exception and the
server drops it, so a client that sent deeply nested JSON, a lone surrogate, a 5,000-digit number
or a request with the wrong shape waits forever. `screen` sits between the transport and the
server: such an item becomes a JSON-RPC error reply (parse error or invalid request) to the id the
line carried, when one can be read, else to `null`.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import mcp_types as types
from anyio.abc import TaskGroup
from mcp.shared._context_streams import ContextReceiveStream, ContextSendStream, create_context_streams
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

log = logging.getLogger("onrecord")
MAX_ID_CHARS = 200


async def screen(
    read_stream: ContextReceiveStream[SessionMessage | Exception],
    write_stream: ContextSendStream[SessionMessage],
    tg: TaskGroup,
) -> ContextReceiveStream[SessionMessage | Exception]:
    """A read stream like `read_stream` whose malformed items are answered on `write_stream`."""
    forward, screened = create_context_streams[SessionMessage | Exception](0)

    async def pump() -> None:
        async with forward, read_stream:
            async for item in read_stream:
                if isinstance(item, SessionMessage):
                    await forward.send(item)
                    continue
                reply = error_reply(item)
                log.warning("malformed message from the client answered with an error: %s", _summary(item))
                if reply is not None:
                    try:
                        await write_stream.send(SessionMessage(reply))
                    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                        return

    tg.start_soon(pump)
    return screened


def error_reply(exc: Exception) -> types.JSONRPCError | None:
    """The reply a malformed message gets; None for a notification (it carries no id to answer)."""
    parse_error = False
    request_id: int | str | None = None
    has_id = False
    if isinstance(exc, ValidationError):
        for err in exc.errors():
            value = err.get("input")
            if err["type"] == "json_invalid":
                parse_error = True
                if isinstance(value, str | bytes):
                    has_id, request_id = top_level_id(
                        value if isinstance(value, str) else value.decode("utf-8", "replace")
                    )
                break
            if isinstance(value, dict) and "id" in value:
                has_id, request_id = True, _usable_id(value["id"])
                break
            if not err["loc"] and isinstance(value, dict):
                break  # an object without an id: a notification
    else:
        parse_error = True
    if not parse_error and not has_id:
        return None
    code, what = (
        (types.PARSE_ERROR, "Parse error") if parse_error else (types.INVALID_REQUEST, "Invalid request")
    )
    return types.JSONRPCError(
        jsonrpc="2.0",
        id=request_id,
        error=types.ErrorData(code=code, message=f"{what}: {_summary(exc)}"),
    )


def _usable_id(value: Any) -> int | str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, str) and len(value) <= MAX_ID_CHARS:
        return value
    return None


def _summary(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{first['msg']}" + (f" at {where}" if where else "")
    return type(exc).__name__


def top_level_id(text: str) -> tuple[bool, int | str | None]:
    """The `id` member of the outermost JSON object in `text`, read without parsing the rest (the
    rest may be what could not be parsed). One pass, no recursion: linear on any input."""
    depth = 0
    i = 0
    n = len(text)
    expect_key = False
    while i < n:
        c = text[i]
        if c == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            key = text[i + 1 : end]
            if depth == 1 and expect_key and key == "id":
                rest = text[end + 1 :].lstrip()
                if rest.startswith(":"):
                    return True, _scalar(rest[1:].lstrip())
            expect_key = False
            i = end + 1
            continue
        if c in "{[":
            depth += 1
            expect_key = c == "{"
        elif c in "}]":
            depth -= 1
        elif c == ",":
            expect_key = depth == 1
        i += 1
    return False, None


def _scalar(text: str) -> int | str | None:
    if text.startswith('"'):
        end = text.find('"', 1)
        if 0 < end <= MAX_ID_CHARS and "\\" not in text[1:end]:
            return text[1:end]
        return None
    digits = text[: MAX_ID_CHARS + 1]
    j = 1 if digits.startswith("-") else 0
    while j < len(digits) and digits[j].isdigit():
        j += 1
    if j > (1 if digits.startswith("-") else 0) and j <= 19:
        return _usable_id(int(digits[:j]))
    return None
