"""Lean tool schemas: what `tools/list` says, with nothing a model or a validator would miss.

pydantic writes schemas for people browsing them: a `title` per property that repeats its name,
`$defs` for every model however often it is used, `anyOf` for every optional value. Each tool's
schemas pass through here once, at registration:

- both: titles that only repeat a property's or a model's name go; a `$defs` entry is inlined
  where that makes the schema shorter (a model used once, a small one used a few times); the
  properties every member of a union declares alike are declared once, on the union.
- output only: `default` and `required` go (every field is always in the result), `type` goes
  where `properties`, `items` or a string `enum` already say it, an optional value is
  `"type": [T, "null"]`, and the envelope's fields (common.budget.Envelope), the same in every
  result, are said once, in the server instructions (ENVELOPE), instead of in every schema.

Argument descriptions, enums and bounds are never touched, nor defaults other than null (an
argument that may be null is simply not required). Every result still validates.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from common.budget import Envelope

ENVELOPE = (
    "Every result is bounded and has, besides the fields its output schema lists (always present), "
    "the envelope: truncated (bool): something was left out to stay in budget, and note (str|null) "
    "says what and how to get it; total (int|null): how many items exist in all, null when unknown; "
    "returned (int|null): how many items this result holds; next_cursor (str|null): pass as `cursor` "
    "for the next page; excluded_by_policy (int): files whose content (in listings, names) the "
    "policy left out; excluded_files (list[str]): the first 50 of them."
)
_ENVELOPE_FIELDS = frozenset(Envelope.model_fields)
_SCHEMA_DICTS = ("properties", "$defs", "patternProperties")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not")
# Keywords that constrain only values of their own type, so they let null through unchanged.
_TYPED_ONLY = frozenset(
    {
        "type",
        "description",
        "items",
        "properties",
        "required",
        "additionalProperties",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "propertyNames",
    }
)


def lean_input(schema: dict[str, Any]) -> dict[str, Any]:
    """An input schema without repeated titles and with `$defs` inlined where shorter."""
    out = _inline_defs(copy.deepcopy(schema))
    _walk(out, None, output=False)
    out.pop("title", None)
    return out


def lean_output(schema: dict[str, Any]) -> dict[str, Any]:
    """An output schema as small as it can be while every result still validates."""
    out = _inline_defs(copy.deepcopy(schema))
    _walk(out, None, output=True)
    out.pop("title", None)
    return {"type": "object", **out}  # MCP requires it at the root


def say_once(schema: dict[str, Any], said: set[tuple[str, str]]) -> None:
    """Drop each property description of an output schema that an earlier tool's output schema of
    the same server already gives for a property of the same name (`said` collects them): one
    `tools/list` says what `created` of a run summary means once, not in every tool returning one."""
    for name, child in (schema.get("properties") or {}).items():
        if not isinstance(child, dict):
            continue
        text = child.get("description")
        if isinstance(text, str):
            if (name, text) in said:
                del child["description"]
            else:
                said.add((name, text))
        say_once(child, said)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            say_once(schema[key], said)
    for key in ("$defs",):
        for child in (schema.get(key) or {}).values():
            if isinstance(child, dict):
                say_once(child, said)
    for key in _SCHEMA_LISTS:
        for child in schema.get(key) or ():
            if isinstance(child, dict):
                say_once(child, said)


def size(schema: Any) -> int:
    """Characters of compact JSON: what a schema costs on the wire."""
    return len(json.dumps(schema, separators=(",", ":"), ensure_ascii=False))


def _default_title(name: str) -> str:
    return name.replace("_", " ").title()


def _walk(node: dict[str, Any], name: str | None, *, output: bool) -> None:
    """Lean `node` in place; `name` is the property or `$defs` key it sits under."""
    # OpenAPI's discriminator is not JSON Schema and points into $defs that may be inlined; each
    # member's `const` says the same.
    node.pop("discriminator", None)
    title = node.get("title")
    if name is not None and title in (name, _default_title(name)):
        del node["title"]
    for key in _SCHEMA_DICTS:
        children = node.get(key)
        if isinstance(children, dict):
            for child_name, child in children.items():
                if isinstance(child, dict):
                    _walk(child, child_name, output=output)
    for key in _SCHEMA_LISTS:
        for child in node.get(key) or ():
            if isinstance(child, dict):
                _walk(child, None, output=output)
    for key in _SCHEMA_ONE:
        child = node.get(key)
        if isinstance(child, dict):
            _walk(child, None, output=output)
    _hoist(node, output=output)
    if not output:
        properties = node.get("properties")
        if isinstance(properties, dict):
            for child in properties.values():
                if isinstance(child, dict):
                    _optional(child)
        return
    # Every field of a result is always present (ENVELOPE says so once), so `required` and
    # `default` say nothing; an object is known by its properties and an array by its items.
    node.pop("default", None)
    node.pop("required", None)
    if (
        node.get("type") == "object"
        and ("properties" in node or isinstance(node.get("additionalProperties"), dict))
    ) or (node.get("type") == "array" and "items" in node):
        del node["type"]
    properties = node.get("properties")
    if isinstance(properties, dict) and properties.keys() >= _ENVELOPE_FIELDS:
        for field in _ENVELOPE_FIELDS:
            del properties[field]
    if node.get("additionalProperties") is True:
        del node["additionalProperties"]
    _nullable(node)
    enum = node.get("enum")
    if node.get("type") == "string" and isinstance(enum, list) and all(isinstance(v, str) for v in enum):
        del node["type"]


def _optional(node: dict[str, Any]) -> None:
    """An argument that defaults to null, `{"anyOf": [S, {"type": "null"}], "default": null}`, as S,
    not required: leaving it out is how to say null, and hosts such as Gemini refuse null unions
    (and a null default for a typed value). The argument's own description wins over the type's."""
    options = node.get("anyOf")
    if (
        "default" not in node
        or node["default"] is not None
        or not isinstance(options, list)
        or len(options) != 2
        or {"type": "null"} not in options
    ):
        return
    other = options[0] if options[1] == {"type": "null"} else options[1]
    if not isinstance(other, dict):
        return
    del node["anyOf"], node["default"]
    outer = dict(node)
    node.clear()
    node.update(other)
    node.update(outer)


def _hoist(node: dict[str, Any], *, output: bool) -> None:
    """Properties every member of a union declares alike, said once on the union itself."""
    for key in ("oneOf", "anyOf"):
        members = node.get(key)
        if not isinstance(members, list) or len(members) < 2 or "properties" in node:
            continue
        shapes: list[dict[str, Any]] = [
            m["properties"] for m in members if isinstance(m, dict) and isinstance(m.get("properties"), dict)
        ]
        # A member that refuses unknown properties would refuse the hoisted ones.
        if len(shapes) != len(members) or any(m.get("additionalProperties") is False for m in members):
            continue
        common = [k for k, v in shapes[0].items() if all(p.get(k) == v for p in shapes[1:])]
        if not common:
            continue
        node["properties"] = {k: shapes[0][k] for k in common}
        if not output:
            node["type"] = "object"  # some hosts refuse `properties` without it
        for shape in shapes:
            for k in common:
                del shape[k]


def _nullable(node: dict[str, Any]) -> None:
    """`{"anyOf": [S, {"type": "null"}]}` as S with `"type": [T, "null"]`, when S allows it."""
    options = node.get("anyOf")
    if not isinstance(options, list) or len(options) != 2 or {"type": "null"} not in options:
        return
    other = options[0] if options[1] == {"type": "null"} else options[1]
    if isinstance(other, dict) and "enum" in other and {"type", "enum", "description"}.issuperset(other):
        del node["anyOf"]
        node.update({k: v for k, v in other.items() if k not in ("type", "enum")})
        node["enum"] = [*other["enum"], None]
        return
    if (
        not isinstance(other, dict)
        or not isinstance(other.get("type"), str)
        or not _TYPED_ONLY.issuperset(other)
        or set(other) & (set(node) - {"anyOf"})
    ):
        return
    del node["anyOf"]
    node.update(other)
    node["type"] = [other["type"], "null"]


def _refs(node: Any, counts: dict[str, int]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            key = ref.removeprefix("#/$defs/")
            counts[key] = counts.get(key, 0) + 1
        for value in node.values():
            _refs(value, counts)
    elif isinstance(node, list):
        for value in node:
            _refs(value, counts)


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace `$ref`s by their definition, one definition at a time, while that shrinks the schema;
    a definition that refers to itself (directly or not) stays."""
    defs: dict[str, Any] = schema.get("$defs") or {}
    while defs:
        counts: dict[str, int] = {}
        _refs(schema, counts)
        chosen = None
        for key, body in defs.items():
            uses = counts.get(key, 0)
            if _reaches(key, body, defs, set()):
                continue
            # Inlined: the body at every use. Kept: the body once under its key, a $ref at every use.
            # Used once or never, inlining always shrinks it: no need to measure.
            if uses <= 1:
                chosen = key
                break
            body_cost = size(body)
            ref_cost = size({"$ref": f"#/$defs/{key}"})
            kept_cost = body_cost + size(key) + 3  # `{"key":body}` is the body, its key, `{`, `:` and `}`
            if uses * body_cost < kept_cost + uses * ref_cost:
                chosen = key
                break
        if chosen is None:
            break
        body = defs.pop(chosen)
        body.pop("title", None)  # it named the definition, which no longer exists
        schema = _substitute(schema, f"#/$defs/{chosen}", body)
        defs = schema.get("$defs") or {}
    if "$defs" in schema and not schema["$defs"]:
        del schema["$defs"]
    return schema


def _reaches(target: str, node: Any, defs: dict[str, Any], seen: set[str]) -> bool:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            key = ref.removeprefix("#/$defs/")
            if key == target:
                return True
            if key not in seen and key in defs:
                seen.add(key)
                if _reaches(target, defs[key], defs, seen):
                    return True
        return any(_reaches(target, v, defs, seen) for v in node.values())
    if isinstance(node, list):
        return any(_reaches(target, v, defs, seen) for v in node)
    return False


def _substitute(node: Any, ref: str, body: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if node.get("$ref") == ref:
            # Siblings of a $ref (a field's description, its default) say more than the model does.
            return {**copy.deepcopy(body), **{k: v for k, v in node.items() if k != "$ref"}}
        return {k: _substitute(v, ref, body) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, ref, body) for v in node]
    return node
