"""What a tool argument is, declared where the parameter is declared (DESIGN §3).

A parameter names its kind in its `Annotated` metadata, beside its description:

    path: Annotated[str, Field(description="A file under the root"), kinds.PATH]
    targets: Annotated[list[str] | None, Field(description="..."), kinds.NODE_IDS]

The kit reads the kinds when a tool is registered. Path-like values (each element of a list, the
file part of a pytest node id) are matched by the policy as paths relative to the root, canonicalised
by the same function the workspace uses. A URL value is rewritten once into its canonical form
(`common.urls`), which the policy matches and the tool is given, so the URL a rule saw is the URL
fetched. Every other value is matched as text. A rule's `path=` condition covers every path-like
argument of a tool, whatever its name.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    """The kind of one argument."""

    name: str
    path_like: bool = False
    many: bool = False
    node_id: bool = False
    url: bool = False

    def values(self, value: Any) -> Iterator[str]:
        """The path texts a value holds (the file part, for node ids); nothing for non-path kinds."""
        if not self.path_like or value is None:
            return
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, str) and item:
                yield item.split("::", 1)[0] if self.node_id else item


PATH = Kind("path", path_like=True)
PATHS = Kind("paths", path_like=True, many=True)
NODE_ID = Kind("node_id", path_like=True, node_id=True)
NODE_IDS = Kind("node_ids", path_like=True, many=True, node_id=True)
DATASET = Kind("dataset", path_like=True)
REV = Kind("rev")
URL = Kind("url", url=True)
SQL = Kind("sql")
TEXT = Kind("text")
GLOB = Kind("glob")


def of_function(fn: Callable[..., Any]) -> dict[str, Kind]:
    """The declared kind of each parameter of `fn` that declares one."""
    hints = typing.get_type_hints(fn, include_extras=True)
    found: dict[str, Kind] = {}
    for name in inspect.signature(fn).parameters:
        hint = hints.get(name)
        for meta in getattr(hint, "__metadata__", ()):
            if isinstance(meta, Kind):
                found[name] = meta
    return found
