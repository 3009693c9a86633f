"""Values from DuckDB made JSON-safe and bounded: data is shown, never obeyed."""

from __future__ import annotations

import datetime
import decimal
import math
import uuid
from typing import Any

from common.visible import visible

MAX_TEXT = 300


def json_value(value: Any, max_text: int = MAX_TEXT) -> Any:
    """`value` as JSON can carry it: text cut and its control characters shown, numbers that JSON
    cannot hold (NaN, infinities, huge decimals) as text, dates as ISO strings."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        if len(value) > 10 * max_text:  # a huge value is cut before it is escaped, never copied whole
            return visible(value[:max_text])[:max_text] + f"… [{len(value) - max_text} more chars]"
        text = visible(value)
        return text if len(text) <= max_text else text[:max_text] + f"… [{len(text) - max_text} more chars]"
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() and abs(value) < 1e15 else str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        shown = data[:48].hex()
        return f"<{len(data)} bytes: {shown}{'…' if len(data) > 48 else ''}>"
    if isinstance(value, dict):
        return {str(json_value(k, 80)): json_value(v, max_text) for k, v in list(value.items())[:100]}
    if isinstance(value, list | tuple):
        items = [json_value(v, max_text) for v in list(value)[:100]]
        return items + ([f"… {len(value) - 100} more"] if len(value) > 100 else [])
    return json_value(str(value), max_text)


def as_float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
