"""Every request gets an answer: malformed lines on stdio are replied to, never dropped (DESIGN §7).

The SDK's stdio transport hands a line it cannot parse to the server as an exception and the
server drops it, so a client that sent deeply nested JSON, a lone surrogate, a 5,000-digit number
or a request with the wrong shape waits forever. `screen` sits between the transport and the
server: such an item becomes a JSON-RPC error reply (parse error or invalid request) to the id the
line carried, when one can be read, else to `null`.

Over streamable HTTP the SDK does answer, but a body that is JSON and no JSON-RPC message gets
-32602 (invalid params) to `null`. `ScreenedHTTP` rewrites that answer to the stdio one: -32600
(invalid request) to the id the body carried.
"""

from __future__ import annotations

import contextvars
import json
import logging
from types import TracebackType
from typing import Any

import anyio
import mcp_types as types
import pydantic_core
from mcp.shared._context_streams import ContextReceiveStream, ContextSendStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("onrecord")
MAX_ID_CHARS = 200


class Screened:
    """A read stream like the transport's whose malformed items are answered on `write_stream`
    instead of being delivered (the server would drop them). It screens as it is read: no task and
    no stream of its own, so a message costs no extra hop between tasks."""

    __slots__ = ("_inner", "_write", "last_context")

    def __init__(
        self,
        read_stream: ContextReceiveStream[SessionMessage | Exception],
        write_stream: ContextSendStream[SessionMessage],
    ) -> None:
        self._inner = read_stream
        self._write = write_stream
        self.last_context: contextvars.Context | None = None

    async def receive(self) -> SessionMessage | Exception:
        while True:
            item = await self._inner.receive()
            if isinstance(item, SessionMessage):
                self.last_context = self._inner.last_context
                return item
            reply = error_reply(item)
            log.warning("malformed message from the client answered with an error: %s", _summary(item))
            if reply is not None:
                try:
                    await self._write.send(SessionMessage(reply))
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    raise anyio.EndOfStream from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> Screened:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Screened:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None


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


class ScreenedHTTP:
    """ASGI wrapper for the streamable HTTP app: the SDK's reply to a POST body that is JSON but no
    JSON-RPC message becomes -32600 to the body's id. Everything else passes through untouched, in
    the SDK's order (host and origin checks first); the body is the copy the SDK itself read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = bytearray()
        held: Message | None = None

        async def tee() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def answer(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] == 400:
                held = message
                return
            if held is not None and message["type"] == "http.response.body":
                start, held = held, None
                reply = _invalid_request_reply(bytes(body), message.get("body", b""))
                if reply is not None and not message.get("more_body", False):
                    headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                    headers.append((b"content-length", str(len(reply)).encode()))
                    await send({**start, "headers": headers})
                    await send({"type": "http.response.body", "body": reply})
                    return
                await send(start)
            await send(message)

        await self.app(scope, tee, answer)


def _invalid_request_reply(request: bytes, response: bytes) -> bytes | None:
    """The -32600 reply that replaces the SDK's -32602 "Validation error" one, else None."""
    try:
        error = json.loads(response)["error"]
    except (ValueError, KeyError, TypeError):
        return None
    if not (
        isinstance(error, dict)
        and error.get("code") == types.INVALID_PARAMS
        and str(error.get("message", "")).startswith("Validation error")
    ):
        return None
    try:
        types.jsonrpc_message_adapter.validate_python(pydantic_core.from_json(request), by_name=False)
    except ValidationError as exc:
        reply = error_reply(exc) or types.JSONRPCError(
            jsonrpc="2.0",
            id=None,
            error=types.ErrorData(code=types.INVALID_REQUEST, message=f"Invalid request: {_summary(exc)}"),
        )
        log.warning("malformed message from the client answered with an error: %s", _summary(exc))
        return reply.model_dump_json(by_alias=True, exclude_unset=True).encode()
    except ValueError:
        return None
    return None
