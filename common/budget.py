"""The output envelope every tool result follows (DESIGN §5): truncation, cursors, token estimates."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from common.errors import OnrecordError

# Well under Claude Code's 25,000-token cap, leaving room for the JSON text mirror's framing.
DEFAULT_MAX_TOKENS = 20_000
CHARS_PER_TOKEN = 3.5
T = TypeVar("T")


class CursorError(OnrecordError):
    """A cursor is malformed or was issued for a different call."""


class Envelope(BaseModel):
    """Fields shared by every bounded result."""

    truncated: bool = Field(default=False, description="True when something was left out to stay in budget")
    total: int | None = Field(default=None, description="How many items exist in all, when known")
    returned: int | None = Field(default=None, description="How many items this result holds")
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` to get the next page")
    note: str | None = Field(default=None, description="What was left out and how to get it")
    excluded_by_policy: int = Field(
        default=0, description="Files whose content (or, in listings, names) the policy left out"
    )
    excluded_files: list[str] = Field(
        default_factory=list, description="The files whose content the policy withheld (the first 50)"
    )


def estimate_tokens(value: Any) -> int:
    """A conservative token estimate for text or a JSON-shaped value."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return int(len(text) / CHARS_PER_TOKEN) + 1


def clamp(value: int | None, low: int, high: int, default: int) -> int:
    """Bound a caller's number instead of obeying it (limit=10**9 means 'as many as allowed')."""
    if value is None:
        return default
    return max(low, min(high, value))


def encode_cursor(kind: str, **state: Any) -> str:
    raw = json.dumps({"k": kind, **state}, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def cursor_position(cursor: str | None, kind: str, expected: dict[str, Any], field: str = "o") -> int:
    """The position a cursor issued by `encode_cursor(kind, ...)` holds in `field`, for a call with
    the same `expected` keys; 0 without a cursor. A cursor a client made up is a clear error."""
    if not cursor:
        return 0
    state = decode_cursor(cursor, kind, **expected)
    position = state.get(field)
    if type(position) is not int or not 0 <= position <= 1_000_000_000:
        raise CursorError(f"cursor {cursor[:40]!r} is not one this server issued; omit it to start over")
    return position


def decode_cursor(cursor: str, kind: str, **expected: Any) -> dict[str, Any]:
    """Decode a cursor issued by `encode_cursor(kind, ...)` for a call with the same `expected` keys."""
    if not isinstance(cursor, str) or len(cursor) > 8192:
        raise CursorError("cursor is not one this server issued; omit it to start over")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise CursorError(
            f"cursor {cursor[:40]!r} is not one this server issued; omit it to start over"
        ) from exc
    if not isinstance(state, dict) or state.get("k") != kind:
        raise CursorError(f"cursor {cursor[:40]!r} belongs to another tool; omit it to start over")
    for key, value in expected.items():
        if state.get(key) != value:
            raise CursorError(
                f"cursor {cursor[:40]!r} was issued for {key}={state.get(key)!r}, not {value!r}; "
                "repeat the call with the same arguments or omit the cursor"
            )
    return state


def take_within(items: Sequence[T], max_chars: int, size: Callable[[T], int] | None = None) -> list[T]:
    """The longest prefix of items whose serialised sizes add up to at most max_chars (at least one)."""
    measure = size or (lambda item: len(item.model_dump_json()) + 1)  # type: ignore[attr-defined]
    kept: list[T] = []
    used = 0
    for item in items:
        used += measure(item)
        if used > max_chars and kept:
            break
        kept.append(item)
    return kept


def join_notes(*parts: str | bool | None) -> str | None:
    """One `note` from the parts that apply (falsy parts are skipped)."""
    text = "; ".join(p for p in parts if isinstance(p, str) and p)
    return text or None
