"""Tools as plain functions bound to a context: the function's own signature is the schema."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any


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
