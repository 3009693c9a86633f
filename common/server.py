"""AccountableServer: policy and audit around every tool call (DESIGN §3, §4).

For each `tools/call`: decide, write the `call` record (flushed), then deny / ask / run, then write
the `result` record. Unknown tools, argument validation errors, crashes, cancellations and
timeouts all get a result record. Tool input schemas are untouched: the layer adds no parameters.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import hashlib
import inspect
import itertools
import json
import logging
import os
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import pydantic_core
from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    GetPromptResult,
    InputRequiredResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
    ToolAnnotations,
)
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette

from common import __version__, content, kinds, listing, procs, progress, schema
from common.approvals import Approval, ApprovalStore, policy_digest, what_runs
from common.audit import AuditLog, canonical, quote
from common.config import ConfigError, Settings
from common.errors import OnrecordError
from common.git import Git
from common.policy import Decision, Policy
from common.redact import PREVIEW_MARGIN, Redaction, redact, redact_logs, redact_target, redact_text
from common.urls import URLError, canonical_url
from common.workspace import canonical_names

log = logging.getLogger("onrecord")

CONFIRM_KEY = "onrecord.approve"
PREVIEW_CHARS = 400
ERROR_CHARS = 2000
TARGET_CHARS = 2048  # a refusal record's target, as long as a URL argument may be
Status = Literal[
    "ok",
    "tool_error",
    "invalid_arguments",
    "unknown_tool",
    "crashed",
    "denied",
    "declined",
    "pending_approval",
    "input_required",
    "timeout",
    "cancelled",
    "protocol_error",
]


class Approve(BaseModel):
    """The form a human answers when a call needs approval."""

    approve: bool = Field(description="Allow this one call with exactly these arguments")


# The result record's keys in canonical (sorted) order, before `seq` and between `seq` and `ts`.
_RESULT_BEFORE_SEQ = (
    "approval_id",
    "approved",
    "call_id",
    "digest",
    "duration_ms",
    "error",
    "excluded_by_policy",
    "preview",
    "redactions",
    "refusals",
)
_RESULT_SEQ_TO_TS = ("size", "status", "tool")


@dataclass
class Outcome:
    """How one call ended: what its `result` record says (fields left None are left out)."""

    status: Status = "crashed"
    error: str | None = None
    approved: bool | None = None
    approval_id: str | None = None
    size: int | None = None
    digest: str | None = None
    preview: str | None = None
    excluded: dict[str, Any] | None = None
    redactions: list[Redaction] = field(default_factory=list)
    refusals: int | None = None  # refusal records the call left (content.refused_call)

    def fail(self, status: Status, error: str) -> None:
        self.status, self.error = status, error

    def describe(self, result: CallToolResult, data: bytes | None = None) -> None:
        """Status, size, digest and redacted preview of what the client reads (`data`: its text
        already encoded, when the caller has it)."""
        # The text blocks are what the client reads (for structured results, the SDK's JSON mirror
        # of structured_content), so size, digest and preview come from them without serialising again.
        blocks = result.content
        if len(blocks) == 1 and isinstance(blocks[0], TextContent):
            text = blocks[0].text
        else:
            text = "\n".join([c.text for c in blocks if isinstance(c, TextContent)])
            data = None
        if not text and result.structured_content is not None:
            text = json.dumps(result.structured_content, ensure_ascii=False, sort_keys=True, default=str)
            data = None
        elif not text:
            text = json.dumps([c.model_dump(mode="json", by_alias=True) for c in blocks], default=str)
            data = None
        if data is None:
            data = text.encode("utf-8")
        # Redact before cutting, so a secret is never left half-visible at the cut.
        preview, fired = redact_text(text[: PREVIEW_CHARS + PREVIEW_MARGIN])
        self.status = "tool_error" if result.is_error else "ok"
        self.size = len(data)
        self.digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.preview = _clip(preview, PREVIEW_CHARS)
        if fired:
            self.redactions += [Redaction(rule, "result") for rule in fired]
        if result.is_error:
            self.error = text

    def spliced(self, call_id: str, tool_json: str, duration_ms: float) -> tuple[str, str]:
        """The result record's fields as canonical JSON in canonical order, split around `seq`
        (common.audit.AuditLog.write_spliced)."""
        out = self.encoded()
        out["call_id"] = f'"{call_id}"'
        out["duration_ms"] = repr(duration_ms)
        out["tool"] = tool_json
        head = "".join([f'"{key}":{out[key]},' for key in _RESULT_BEFORE_SEQ if key in out])
        middle = "".join([f'"{key}":{out[key]},' for key in _RESULT_SEQ_TO_TS if key in out])
        return head, middle

    def encoded(self) -> dict[str, str]:
        """`fields()` as canonical JSON per field, built without encoding the record twice."""
        out: dict[str, str] = {"status": quote(self.status)}
        redactions = self.redactions
        if self.error is not None:
            text, fired = redact_text(self.error)
            if fired:
                redactions = [*redactions, *(Redaction(rule, "error") for rule in fired)]
            out["error"] = quote(_clip(text, ERROR_CHARS))
        if self.approved is not None:
            out["approved"] = "true" if self.approved else "false"
        if self.approval_id is not None:
            out["approval_id"] = quote(self.approval_id)
        if self.size is not None:
            out["size"] = str(self.size)
        if self.digest is not None:
            out["digest"] = quote(self.digest)
        if self.preview is not None:
            out["preview"] = quote(self.preview)
        if self.excluded is not None:
            out["excluded_by_policy"] = canonical(self.excluded)
        if self.refusals is not None:
            out["refusals"] = str(self.refusals)
        if redactions:
            out["redactions"] = canonical([r.as_record() for r in redactions])
        return out

    def fields(self) -> dict[str, Any]:
        """The record's fields, with the error redacted and clipped."""
        return {key: json.loads(value) for key, value in self.encoded().items()}


@dataclass(frozen=True)
class Refused:
    """An ask that did not end in a yes: the outcome to record and the message for the caller."""

    outcome: Outcome
    message: str


@dataclass(frozen=True)
class _Shown:
    """What a human deciding a call (and a reviewer reading its record) is shown: the arguments as
    sent and the targets the policy matched, both redacted with paths and URLs piece by piece."""

    arguments: dict[str, Any]
    redactions: list[Redaction]
    targets: dict[str, list[str]]  # unredacted: what a grant binds
    shown_targets: dict[str, list[str]]

    @property
    def redacted(self) -> list[str]:
        """The rules that hid part of what is shown."""
        return sorted({r.rule for r in self.redactions})


@dataclass(frozen=True)
class _Params:
    """What the call path needs to know about a tool's parameters, read once at registration."""

    names: frozenset[str]
    defaults: dict[str, Any]
    validate: bool
    lists: frozenset[str]


@dataclass(frozen=True)
class _Facts:
    """What every call of one registered tool shares, worked out on its first call."""

    owner: str
    qualified: str
    tool_json: str  # "tool" of its records, as canonical JSON
    annotations: dict[str, bool | None] | None
    kinds: dict[str, kinds.Kind]
    params: _Params | None
    # The decision when it cannot depend on the arguments (no path-like parameter, none a rule
    # conditions on): valid for every call that sends only the tool's own arguments.
    static: Decision | None
    decide: content.Decides  # the content check of a call no human approved
    policy: Policy  # the policy these were worked out under
    urls: tuple[str, ...] = ()  # the URL-kind parameters, given to the tool in canonical form
    targets: frozenset[str] = frozenset()  # the path- and URL-kind parameters


class AccountableServer(MCPServer):
    """An MCPServer whose every tool call is decided by policy and written to the audit log."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        instructions: str | None = None,
        audit: AuditLog | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, version=__version__, instructions=instructions, **kwargs)
        redact_logs()  # after MCPServer's own logging set-up: stderr gets no secret either
        # One INFO line per outgoing HTTP request is noise in a host's log; failures still show.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self.config = settings
        self.policy = Policy(settings)
        for warning in self.policy.warnings:
            log.warning("%s", warning)
        self.approvals = ApprovalStore.for_settings(settings)
        self.audit = audit or AuditLog(
            settings.audit_path,
            name,
            fsync=settings.fsync,
            batch_ms=settings.batch_ms,
            session=lambda: {**_session_fields(settings), "client": self._first_client},
        )
        self._owners: dict[str, str] = {}
        self._annotations: dict[str, dict[str, bool | None]] = {}
        self._kinds: dict[str, dict[str, kinds.Kind]] = {}
        self._params: dict[str, _Params] = {}
        self._facts: dict[str, _Facts] = {}
        self._said: set[tuple[str, str]] = set()  # output descriptions tools/list already gives
        self._calls = itertools.count(1)
        self._pid = os.getpid()
        self._first_client: str | None = None  # the session_start record names the first client
        self._policy_digest = policy_digest(settings)
        # A listing kept from an earlier start (common.listing): what tools/list says for the tools
        # it names, each built on first use from its server's table.
        self._tool_manager = listing.LazyTools(
            self._build_listed, warn_on_duplicate_tools=self._tool_manager.warn_on_duplicate_tools
        )
        self._listed: dict[str, Tool] = {}
        self._listed_owners: dict[str, str] = {}
        self._listing_file: Path | None = None
        self._tables: dict[str, Callable[[], dict[str, Any]]] = {}

    async def run_stdio_async(self) -> None:
        """Serve over stdio, answering malformed messages instead of dropping them (common.wire)."""
        from mcp.server.stdio import stdio_server

        from common import wire

        async with stdio_server() as (read_stream, write_stream):
            await self._lowlevel_server.run(
                wire.Screened(read_stream, write_stream),
                write_stream,
                self._lowlevel_server.create_initialization_options(),
            )

    def streamable_http_app(self, **kwargs: Any) -> Starlette:
        """The SDK's app, with malformed messages answered as on stdio (common.wire)."""
        from common import wire

        app = super().streamable_http_app(**kwargs)
        app.add_middleware(wire.ScreenedHTTP)
        return app

    # ------------------------------------------------------------------------------ registration

    def add_tool(self, fn: Callable[..., Any], name: str | None = None, *args: Any, **kwargs: Any) -> None:
        owner = kwargs.pop("server", None)
        tool_name = name or fn.__name__
        pending = self._tool_manager.pending
        listed = tool_name in pending  # promised by a kept listing, built now
        if listed:
            pending.discard(tool_name)
        elif tool_name in self._owners:
            # Two servers in one process (`serve all`): the first would run, the record would name
            # the second. A name has one owner.
            raise ConfigError(
                f"tool name {tool_name!r} is registered by both {self._owners[tool_name]!r} and "
                f"{owner or self.name!r}; tool names must be unique within one process"
            )
        super().add_tool(fn, name, *args, **kwargs)
        self._facts.clear()  # a sibling can change which path-only rules cover a server's tools
        if not listed:
            self._owners[tool_name] = owner or self.name
            self.policy.register(owner or self.name, tool_name)
        self._kinds[tool_name] = found = kinds.of_function(fn)
        registered = self._tool_manager.get_tool(tool_name)
        if registered is not None:
            # What clients read: a description without the docstring's indentation, and a schema
            # that says unknown arguments are refused (the call path refuses them).
            registered.description = inspect.cleandoc(registered.description or "")
            # Defaults as the function declares them: the lean schema leaves out null ones.
            declared = registered.parameters.get("properties", {})
            registered.parameters = schema.lean_input(registered.parameters)
            registered.parameters["additionalProperties"] = False
            if registered.fn_metadata.output_schema is not None:
                # Read live by the SDK: tools/list publishes the lean schema from here on.
                output = schema.lean_output(registered.fn_metadata.output_schema)
                if listed:  # its descriptions are the listing's; checked in full below
                    schema.say_once(output, set())
                else:
                    schema.say_once(output, self._said_so_far())
                registered.fn_metadata.output_schema = output
            properties = registered.parameters.get("properties", {})
            self._params[tool_name] = _Params(
                names=frozenset(properties),
                defaults={k: v["default"] for k, v in declared.items() if "default" in v},
                # Validating costs a second pydantic pass; a rule can only tell the difference on an
                # argument it names that is not a path (a path's text is the same once valid).
                validate=any(
                    k in self.policy.conditioned and not (k in found and found[k].path_like)
                    for k in properties
                ),
                lists=frozenset(k for k, kind in found.items() if kind.many),
            )
            # Every result leaves through the content gate (common.content); the SDK has read the
            # signature already, so the wrapper needs none of its own.
            registered.fn = content.wrap(registered.fn, is_async=registered.is_async)
            registered.is_async = True
            if registered.annotations is not None and registered.annotations.read_only_hint:
                # The spec gives destructive and idempotent hints meaning only for tools that write;
                # the policy keeps reading them from _annotations below.
                registered.annotations = registered.annotations.model_copy(
                    update={"destructive_hint": None, "idempotent_hint": None}
                )
        ann: ToolAnnotations | None = kwargs.get("annotations")
        self._annotations[tool_name] = {
            "read_only": ann.read_only_hint if ann else None,
            "destructive": ann.destructive_hint if ann else None,
            "idempotent": ann.idempotent_hint if ann else None,
            "open_world": ann.open_world_hint if ann else None,
        }
        if listed:
            self._check_listed(tool_name)

    def remove_tool(self, name: str) -> None:
        if name in self._tool_manager.pending:
            self._tool_manager.pending.discard(name)
        else:
            super().remove_tool(name)
        self._listed.pop(name, None)
        self._facts.clear()
        self._owners.pop(name, None)
        self._kinds.pop(name, None)
        self._annotations.pop(name, None)

    # ------------------------------------------------------------------------------ kept listing

    def use_listing(self, file: Path, entries: list[listing.Entry]) -> bool:
        """Answer tools/list from `entries` (common.listing) for the servers registered next with
        `add_listed`; False, and nothing changed, when an entry is not a valid tool."""
        try:
            tools = {tool["name"]: (owner, Tool.model_validate(tool)) for owner, tool in entries}
        except ValidationError:
            return False
        if len(tools) != len(entries):
            return False
        self._listing_file = file
        self._listed = {name: tool for name, (_, tool) in tools.items()}
        self._listed_owners = {name: owner for name, (owner, _) in tools.items()}
        return True

    def _said_so_far(self) -> set[tuple[str, str]]:
        """The output descriptions tools/list gives already, the kept listing's included."""
        if self._listed and not self._said:
            for tool in self._listed.values():
                if tool.output_schema is not None:
                    schema.say_once(copy.deepcopy(tool.output_schema), self._said)
        return self._said

    def listed_tools(self, owner: str) -> list[str]:
        """The tools of server `owner` that the kept listing names (none without one)."""
        return [name for name, o in self._listed_owners.items() if o == owner]

    def add_listed(
        self, owner: str, table: Callable[[], dict[str, tuple[Callable[..., Any], Any, str]]]
    ) -> None:
        """Register the listed tools of `owner` without building them: `table` gives each tool's
        function, annotations and title by name, read when one of them is first used."""
        for name in self.listed_tools(owner):
            if name in self._owners:
                raise ConfigError(
                    f"tool name {name!r} is registered by both {self._owners[name]!r} and {owner!r}; "
                    "tool names must be unique within one process"
                )
            self._owners[name] = owner
            self.policy.register(owner, name)
            self._tool_manager.pending.add(name)
        self._facts.clear()
        self._tables[owner] = functools.cache(table)

    def listing_entries(self) -> list[listing.Entry]:
        """What tools/list says now, with each tool's server: what a later start may keep."""
        return [
            (
                self._owners.get(t.name, self.name),
                t.model_dump(mode="json", by_alias=True, exclude_unset=True),
            )
            for t in self._tools_listed()
        ]

    def _build_listed(self, name: str) -> None:
        """Build a tool the kept listing named, from its server's table."""
        owner = self._owners[name]
        try:
            found = self._tables[owner]().get(name)
            if found is not None:
                fn, annotations, title = found
                self.add_tool(
                    fn, name=name, title=title, annotations=annotations, structured_output=True, server=owner
                )
                return
            why = f"{owner} has no tool {name!r}"
        except Exception as exc:  # a cold start would have failed; here the one tool is unknown
            log.exception("could not build the tool %r", name)
            why = f"building {name!r} failed: {exc!r}"
        # Unknown from now on: its calls are refused, and recorded, as any unknown tool's.
        self._tool_manager.pending.discard(name)
        self._owners.pop(name, None)
        self._listed.pop(name, None)
        self._listing_stale(why)

    def _check_listed(self, name: str) -> None:
        """Compare a listed tool, just built, with what the listing said of it."""
        tool = self._tool_manager._tools[name]  # pyright: ignore[reportPrivateUsage]
        built = self._as_listed(tool).model_dump(mode="json", by_alias=True, exclude_unset=True)
        said = self._listed[name].model_dump(mode="json", by_alias=True, exclude_unset=True)
        output = built.pop("outputSchema", None), said.pop("outputSchema", None)
        if built != said or not listing.covers(*output):
            self._listing_stale(f"the tool {name!r} differs from its listing")
            self._listed[name] = self._as_listed(tool)  # the truth for the rest of this process

    def _listing_stale(self, why: str) -> None:
        log.warning("the kept tool listing was stale (%s); the next start builds it anew", why)
        if self._listing_file is not None:
            listing.drop(self._listing_file)

    @staticmethod
    def _as_listed(info: Any) -> Tool:
        # As MCPServer.list_tools makes it.
        return Tool(
            name=info.name,
            title=info.title,
            description=info.description,
            input_schema=info.parameters,
            output_schema=info.output_schema,
            annotations=info.annotations,
            icons=info.icons,
            _meta=info.meta,
        )

    def _tools_listed(self) -> list[Tool]:
        built = self._tool_manager.list_tools()
        if not self._listed:
            return [self._as_listed(info) for info in built]
        # Listed tools first, in the listing's order, then any added since: registration order.
        return [*self._listed.values(), *(self._as_listed(t) for t in built if t.name not in self._listed)]

    async def list_tools(self) -> list[Tool]:
        return self._tools_listed()

    def _tool_input_schema(self, name: str) -> dict[str, Any] | None:
        if name in self._tool_manager.pending:
            return self._listed[name].input_schema
        return super()._tool_input_schema(name)

    async def _handle_list_tools(
        self, ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        if params is not None and params.cursor is not None:
            # Every tool fits on one page, so no cursor we could have issued exists; the spec asks
            # for -32602 rather than a silent first page.
            raise MCPError(
                INVALID_PARAMS,
                f"invalid cursor {params.cursor!r}: tools/list returns every tool on one page and "
                "issues no cursors; call it without one",
            )
        return await super()._handle_list_tools(ctx, params)

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        if self._prompt_manager.get_prompt(name) is None:
            # The SDK answers a plain exception with error code 0; an unknown name is -32602.
            raise MCPError(INVALID_PARAMS, f"Unknown prompt: {name}")
        return await super().get_prompt(name, arguments, context)

    async def _handle_call_tool(
        self, ctx: ServerRequestContext[Any], params: CallToolRequestParams
    ) -> CallToolResult | InputRequiredResult:
        # The request context as the SDK hands it to this hook: the call path reads what it needs
        # from it once, instead of through the Context model's properties on every access.
        token = _REQUEST.set(ctx)
        try:
            return await super()._handle_call_tool(ctx, params)
        finally:
            _REQUEST.reset(token)

    def qualified(self, name: str) -> tuple[str, str]:
        owner = self._owners.get(name, self.name)
        return owner, f"{owner}.{name}"

    def validated(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments as the tool will get them (types coerced, defaults filled in), or as sent
        when they do not validate (the call then fails validation and runs nothing)."""
        tool = self._tool_manager.get_tool(name)
        if tool is None:
            return arguments
        try:
            return tool.fn_metadata.validate_arguments(arguments)
        except Exception:  # any validation failure is reported by the SDK's own call path
            return arguments

    def seen_arguments(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """What the policy matches: the validated arguments, or, when no rule could tell the
        difference, the arguments as sent with the tool's defaults filled in."""
        params = self._params.get(name)
        if params is None:
            return arguments
        if params.validate or any(isinstance(arguments.get(k), str) for k in params.lists):
            # A list sent as a JSON string is parsed by the SDK before the tool sees it.
            return self.validated(name, arguments)
        return {**params.defaults, **arguments} if params.defaults else arguments

    def _params_schema(self, name: str) -> dict[str, Any]:
        tool = self._tool_manager.get_tool(name)
        return tool.parameters.get("properties", {}) if tool is not None else {}

    def _unknown_arguments(self, name: str, arguments: dict[str, Any]) -> str | None:
        """A message naming arguments the tool does not take (they would be dropped silently)."""
        params = self._params.get(name)
        if params is None or params.names.issuperset(arguments):
            return None
        unknown = sorted(k for k in arguments if k not in params.names)
        return (
            f"unknown argument(s) {', '.join(repr(k) for k in unknown)}; "
            f"{name} takes: {', '.join(sorted(params.names)) or 'no arguments'}"
        )

    def explain(self, name: str, arguments: dict[str, Any]) -> Decision:
        """The decision a call would get, without making it."""
        self._tool_manager.get_tool(name)
        owner, _ = self.qualified(name)
        facts = self._facts_of(name)
        if facts is not None and facts.urls:
            arguments = _canonical_urls(arguments, facts.urls)
        return self.policy.decide(
            owner,
            name,
            self.seen_arguments(name, arguments),
            self._annotations.get(name),
            kinds=self._kinds.get(name),
        )

    def _gate(self, owner: str, name: str, approved: list[str] | None) -> content.Gate:
        """The content check of one call; `approved` are the paths a human approved it for."""
        return content.Gate(
            self._decider(owner, name, approved), screen=self.policy.content_screen(owner, name)
        )

    def _decider(self, owner: str, name: str, approved: list[str] | None) -> content.Decides:
        def decide(path: str, *, follow_links: bool) -> tuple[bool, str, bool]:
            d = self.policy.content_decision(owner, name, path, follow_links=follow_links)
            if d.effective == "allow":
                return True, d.reason, False
            if d.action == "ask" and approved is not None:
                names = canonical_names(self.config.root, path, follow_links=follow_links)
                if any(_under(n, a) for n in names for a in approved):
                    return True, d.reason, True
            return False, d.reason, d.action == "ask"

        def call(arguments: Mapping[str, Any]) -> Decision | None:
            facts = self._facts_of(name)
            sent = dict(arguments)
            if facts is not None and facts.urls:
                sent = _canonical_urls(sent, facts.urls)
            d = self.policy.decide(
                owner,
                name,
                self.seen_arguments(name, sent),
                self._annotations.get(name),
                kinds=self._kinds.get(name),
            )
            if d.action == "allow":
                return None
            # A decision every call of the tool gets is the running call's own, which its call record
            # gives: the human who approved this call answered that ask, and in shadow mode the call
            # ran under it. An ask or deny that names these arguments is news.
            if self.policy.argument_free(d) and (
                not d.enforced or (d.effective == "ask" and approved is not None)
            ):
                return None
            return d  # in shadow mode too: content.refused_call records it and lets the tool go on

        return content.pair(decide, call)

    def _facts_of(self, name: str) -> _Facts | None:
        """The shared facts of a registered tool (None for a name no tool has)."""
        facts = self._facts.get(name)
        if facts is None and name in self._tool_manager.pending:
            self._tool_manager.get_tool(name)  # a listed tool is built now: its kinds come from it
        if (facts is None or facts.policy is not self.policy) and name in self._owners:
            owner, qualified = self.qualified(name)
            found = self._kinds.get(name, {})
            params = self._params.get(name)
            annotations = self._annotations.get(name)
            static = None
            if (
                params is not None
                and not any(k.path_like for k in found.values())
                and params.names.isdisjoint(self.policy.conditioned)
            ):
                static = self.policy.decide(owner, name, {}, annotations, kinds=found)
            facts = self._facts[name] = _Facts(
                owner,
                qualified,
                quote(qualified),
                annotations,
                found,
                params,
                static,
                self._decider(owner, name, None),
                self.policy,
                tuple(k for k, kind in found.items() if kind.url),
                frozenset(k for k, kind in found.items() if kind.url or kind.path_like),
            )
        return facts

    # ----------------------------------------------------------------------------------- the call

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        started = time.perf_counter()
        call_id = f"{self._pid}-{next(self._calls)}"
        rc = _REQUEST.get() if context is not None else None
        if rc is None and _in_request(context):  # a Context made outside the SDK's call hook
            assert context is not None
            rc = context.request_context
        ctx = context if rc is not None else None
        sent = arguments
        facts = self._facts_of(name)
        if facts is None:  # an unknown tool: the SDK refuses it, the records still say so
            owner, qualified = self.qualified(name)
            call_kinds: dict[str, kinds.Kind] = {}
            validated = arguments
            decision = self.policy.decide(owner, name, arguments, None, kinds=call_kinds)
            tool_json = quote(qualified)
        else:
            owner, qualified, tool_json, call_kinds = (
                facts.owner,
                facts.qualified,
                facts.tool_json,
                facts.kinds,
            )
            params = facts.params
            if facts.urls:
                # The URL a rule matches is the URL the tool is given (common.urls).
                arguments = _canonical_urls(arguments, facts.urls)
            if facts.static is not None and params is not None and params.names.issuperset(arguments):
                validated = arguments  # read again only when a human is asked (below)
                decision = facts.static
            else:
                validated = self.seen_arguments(name, arguments)
                decision = self.policy.decide(owner, name, validated, facts.annotations, kinds=call_kinds)
        shown_args, redactions = redact(sent, "arguments")
        human: _Shown | None = None
        middle = f'"tool":{tool_json},'
        if (
            facts is not None
            and facts.targets
            and (arguments is not sent or decision.effective == "ask" or _touches(redactions, facts.targets))
        ):
            # The record names what the call acts on as the policy matched it, and a secret-shaped
            # piece of a path or URL hides only itself: neither a reviewer nor an approving human
            # reads a different target from the one that runs.
            human = self._shown(sent, validated, shown_args, redactions, facts)
            shown_args, redactions = human.arguments, human.redactions
            middle = f'"targets":{canonical(human.shown_targets)},{middle}'
        client, client_json, protocol_json, request_json = _client_fields(rc)
        # The call record's fields in canonical (sorted) order, split around `seq`.
        noted = f'"redactions":{canonical([r.as_record() for r in redactions])},' if redactions else ""
        head = (
            f'"arguments":{canonical(shown_args)},"call_id":"{call_id}","client":{client_json},'
            f'"decision":{decision.record_json},"protocol":{protocol_json},{noted}"request_id":{request_json},'
        )
        if self.audit.path is None:
            self._first_client = client
        try:
            self.audit.write_spliced("call", head, middle)
        except OSError as exc:
            # Fail closed: no call runs unrecorded.
            raise ToolError(
                f"Error executing tool {name}: the audit log in {str(self.audit.directory)!r} cannot be "
                f"written ({exc.strerror or exc}); no call runs unrecorded. Fix the directory's permissions "
                "or free space, or set [audit] dir in the settings"
            ) from exc

        outcome = Outcome()
        approved: list[str] | None = None
        gate: content.Gate | None = None
        try:
            if unknown := self._unknown_arguments(name, arguments):
                outcome = Outcome("invalid_arguments", error=unknown)
                return _error(f"Error executing tool {name}: {unknown}")
            if decision.effective == "deny":
                outcome = Outcome("denied")
                return _error(_denied_message(qualified, decision))
            if decision.effective == "ask":
                answer = await self._ask(
                    qualified,
                    self.validated(name, arguments),
                    human or _Shown(shown_args, redactions, {}, {}),
                    decision,
                    ctx,
                    call_id,
                )
                if isinstance(answer, InputRequiredResult):
                    outcome = Outcome("input_required")
                    return answer
                if isinstance(answer, Refused):
                    outcome = answer.outcome
                    return _error(answer.message)
                outcome.approved = True
                approved = [
                    n
                    for values in self.policy.path_names(validated, call_kinds).values()
                    for v in values
                    for n in v
                ]
            if approved is None and facts is not None:
                gate = content.Gate(facts.decide, screen=self.policy.content_screen(owner, name))
            else:
                gate = self._gate(owner, name, approved)
            # A refusal the tool meets while it runs (a redirect's target) is a record of this call.
            gate.record = functools.partial(self._refusal_record, call_id, name, validated)
            token = content.enter(gate)
            try:
                result: CallToolResult | InputRequiredResult | None = None
                with anyio.CancelScope() as limit:
                    # The call time limit, from the process's one loop timer (common.progress):
                    # a deadline of the scope's own would arm and cancel a timer on every call.
                    if not progress.ALARMS.set(limit, self.config.call_timeout_s, limit.cancel):
                        limit.deadline = anyio.current_time() + self.config.call_timeout_s
                    try:
                        result = await progress.beating(
                            _progress_sender(ctx, rc),
                            qualified,
                            self.config.heartbeat_s,
                            functools.partial(super().call_tool, name, arguments, context),
                        )
                    finally:
                        progress.ALARMS.cancel(limit)
                if limit.cancelled_caught or result is None:
                    raise TimeoutError
            finally:
                content.leave(token)
            if isinstance(result, CallToolResult):
                outcome.describe(result, _compact_text(result))
            else:
                outcome.status = "input_required"
            return result
        except TimeoutError as exc:
            outcome.fail("timeout", f"exceeded the {self.config.call_timeout_s:g}s call limit")
            raise ToolError(
                f"Error executing tool {name}: it ran longer than the {self.config.call_timeout_s:g}s "
                "call limit (limits.call_timeout_s) and was stopped; narrow the request and retry"
            ) from exc
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) and isinstance(cause, OnrecordError):
                # Our own modules' errors are written for the caller; let the model read them,
                # unless they quote a file the policy withholds.
                message = _screened(gate, str(cause))
                outcome.fail("tool_error", message)
                raise ToolError(f"Error executing tool {name}: {message}") from cause
            if isinstance(exc, UnexpectedToolError):
                outcome.fail("crashed", f"{exc} | cause: {cause!r}")
            elif isinstance(cause, ValidationError):
                message = f"Error executing tool {name}: {_invalid(cause, self._params_schema(name))}"
                outcome.fail("invalid_arguments", message)
                raise ToolError(message) from cause
            elif name not in self._owners:
                # The spec makes an unknown tool a protocol error (-32602), not a tool result.
                outcome.fail("unknown_tool", str(exc))
                raise MCPError(INVALID_PARAMS, str(exc)) from exc
            else:
                message = _screened(gate, str(exc))
                outcome.fail("tool_error", message)
                if message != str(exc):
                    raise ToolError(f"Error executing tool {name}: {message}") from exc
            raise
        except MCPError as exc:
            outcome.fail("protocol_error", f"{exc.error.code}: {exc.error.message}")
            raise
        except anyio.get_cancelled_exc_class():
            outcome.fail("cancelled", "the client cancelled the call or the connection closed")
            raise
        except BaseException as exc:
            outcome.fail("crashed", repr(exc))
            raise
        finally:
            if gate is not None and (gate.excluded or gate.hidden):
                outcome.excluded = {"files": gate.excluded[:50], "hidden": gate.hidden}
            if gate is not None and gate.refusals:
                outcome.refusals = gate.refusals
            self._write_result(call_id, tool_json, started, outcome)

    def _write_result(self, call_id: str, tool_json: str, started: float, outcome: Outcome) -> None:
        head, middle = outcome.spliced(call_id, tool_json, round((time.perf_counter() - started) * 1000, 3))
        try:
            self.audit.write_spliced("result", head, middle)
        except OSError:
            log.exception("could not write the audit result record for call %s", call_id)
            raise

    # ---------------------------------------------------------------------------------------- ask

    def _shown(
        self,
        sent: dict[str, Any],
        validated: dict[str, Any],
        shown_args: dict[str, Any],
        redactions: list[Redaction],
        facts: _Facts,
    ) -> _Shown:
        """The arguments with paths and URLs redacted piece by piece, and the call's targets."""
        shown_args, redactions = _bounded(sent, shown_args, redactions, facts.targets)
        targets: dict[str, list[str]] = {}
        for key, values in self.policy.path_names(validated, facts.kinds).items():
            if names := list(dict.fromkeys(n for v in values for n in v)):
                targets[key] = names
        for key in facts.urls:
            value = validated.get(key)
            if isinstance(value, str):
                targets[key] = [value]
        shown_targets: dict[str, list[str]] = {}
        for key, names in targets.items():
            shown_targets[key] = []
            for n in names:
                text, fired = redact_target(n)
                shown_targets[key].append(text)
                redactions = [*redactions, *(Redaction(rule, f"targets.{key}") for rule in fired)]
        return _Shown(shown_args, redactions, targets, shown_targets)

    def _refusal_record(
        self,
        call_id: str,
        name: str,
        called: Mapping[str, Any],
        arguments: Mapping[str, Any],
        decision: Decision | None,
        via: str | None,
    ) -> None:
        """Write the `refusal` record of call `call_id`: the tool, running with `called`, met the
        decision `decision` for acting with `arguments` instead (common.content.refused_call), or,
        with None, the content decision of reading the file `arguments["path"]`
        (common.content.refused_read). It names what the tool was kept from (the targets as the
        policy matched them, redacted piece by piece as a call record names its own, and any other
        argument that differs from the call's) and the decision with its rule, file and reason."""
        facts = self._facts_of(name)
        if decision is None:
            owner = facts.owner if facts is not None else self.qualified(name)[0]
            decision = self.policy.content_decision(
                owner, name, str(arguments.get("path")), follow_links=True
            )
        sent = dict(arguments)
        if facts is not None and facts.urls:
            sent = _canonical_urls(sent, facts.urls)
        defaults = facts.params.defaults if facts is not None and facts.params is not None else {}
        missing = object()
        changed = [k for k, v in sent.items() if called.get(k, defaults.get(k, missing)) != v]
        shown_args, redactions = redact(sent, "arguments")
        fields: dict[str, Any] = {
            "call_id": call_id,
            "tool": facts.qualified if facts is not None else self.qualified(name)[1],
            "decision": decision.record,
        }
        if facts is not None and facts.targets:
            shown = self._shown(sent, self.seen_arguments(name, sent), shown_args, redactions, facts)
            shown_args, redactions = shown.arguments, shown.redactions
            # A target the tool met (a redirect's Location) has no schema bound, as a call's own has.
            fields["targets"] = {
                k: [_clip(t, TARGET_CHARS) for t in v] for k, v in shown.shown_targets.items()
            }
            changed = [k for k in changed if k not in facts.targets]
        if changed:
            fields["arguments"] = {k: shown_args[k] for k in changed if k in shown_args}
        kept = [
            r
            for r in redactions
            if r.where.startswith("targets.")
            or (r.where.startswith("arguments.") and _argument_of(r.where) in changed)
        ]
        if kept:
            fields["redactions"] = [r.as_record() for r in kept]
        if via is not None:
            fields["via"] = via
        try:
            self.audit.write("refusal", fields)
        except OSError:
            log.exception("could not write the audit refusal record for call %s", call_id)
            raise

    async def _ask(
        self,
        qualified: str,
        arguments: dict[str, Any],
        shown: _Shown,
        decision: Decision,
        ctx: Context[Any, Any] | None,
        call_id: str,
    ) -> Refused | InputRequiredResult | None:
        """None when the call may run (a grant was consumed or the human said yes); else why not."""
        session = self.audit.path.stem if self.audit.path is not None else ""
        granted = self.approvals.consume(
            qualified,
            arguments,
            root=str(self.config.root),
            server=self.name,
            policy=self._policy_digest,
            session=session,
            targets=shown.targets,
        )
        if granted is not None:
            self._approval_record(
                call_id, granted.id, "consumed", "onrecord approve", granted.decided_by, shown
            )
            return None
        if ctx is not None and ctx.client_capabilities and ctx.client_capabilities.elicitation:
            runs = what_runs(shown.shown_targets, shown.redacted)
            message = (
                f"An AI agent wants to call {qualified} with {canonical(shown.arguments)}. "
                + (f"{runs} " if runs else "")
                + f"Policy asks a human first: {decision.reason}. Allow this one call?"
            )
            if ctx.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
                answer = await ctx.elicit(message, Approve)
                approved = answer.action == "accept" and bool(
                    getattr(answer, "data", None) and answer.data.approve
                )
                action = answer.action
            else:
                # 2026-07-28 has no back channel: return the question; the SDK seals request_state to
                # this method, tool and arguments, so a client cannot pre-supply an approval.
                reply = (ctx.input_responses or {}).get(CONFIRM_KEY)
                if not (
                    isinstance(reply, ElicitResult) and ctx.request_state == f"{CONFIRM_KEY}:{qualified}"
                ):
                    return InputRequiredResult(
                        request_state=f"{CONFIRM_KEY}:{qualified}",
                        input_requests={
                            CONFIRM_KEY: ElicitRequest(
                                params=ElicitRequestFormParams(
                                    message=message, requested_schema=Approve.model_json_schema()
                                )
                            )
                        },
                    )
                approved = reply.action == "accept" and bool((reply.content or {}).get("approve"))
                action = reply.action
            self._approval_record(
                call_id, None, "granted" if approved else "declined", "elicitation", None, shown
            )
            if approved:
                return None
            return Refused(
                Outcome("declined"),
                f"The human declined the call to {qualified} "
                f"({'answered no' if action == 'accept' else action}). Do not retry it unchanged.",
            )
        pending = self.approvals.request(
            qualified,
            arguments,
            shown.arguments,
            decision.reason,
            root=str(self.config.root),
            server=self.name,
            policy=self._policy_digest,
            session=session,
            targets=shown.targets,
            shown_targets=shown.shown_targets,
            redacted=shown.redacted,
        )
        self._approval_record(call_id, pending.id, "requested", "onrecord approve", None, shown)
        return Refused(
            Outcome("pending_approval", approval_id=pending.id),
            _pending_message(qualified, decision, pending),
        )

    def _approval_record(
        self, call_id: str, approval_id: str | None, action: str, via: str, by: str | None, shown: _Shown
    ) -> None:
        fields: dict[str, Any] = {
            "call_id": call_id,
            "approval_id": approval_id,
            "action": action,
            "via": via,
            "by": by,
        }
        if shown.shown_targets:
            # A target the tool met (a redirect's Location) has no schema bound, as a call's own has.
            fields["targets"] = {
                k: [_clip(t, TARGET_CHARS) for t in v] for k, v in shown.shown_targets.items()
            }
        if shown.redacted:
            fields["redacted"] = shown.redacted
        self.audit.write("approval", fields)


# ---------------------------------------------------------------------------------------- helpers


def _invalid(exc: ValidationError, properties: dict[str, Any]) -> str:
    """One line per invalid argument: what was given, what is expected, and the argument's own
    description (which carries an example), instead of pydantic's report and documentation links."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        field = loc[0] if loc else "arguments"
        where = ".".join(loc) or "arguments"
        given = "missing" if err["type"] == "missing" else f"got {_short(err.get('input'))}"
        described = (properties.get(field) or {}).get("description")
        lines.append(f"argument {where!r}: {err['msg']} ({given})" + (f"; {described}" if described else ""))
    return "invalid arguments: " + " | ".join(lines)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _screened(gate: content.Gate | None, text: str) -> str:
    if gate is None:
        return text
    token = content.enter(gate)
    try:
        return content.screen(text)
    finally:
        content.leave(token)


def _under(path: str, folder: str) -> bool:
    return folder == "." or path == folder or path.startswith(folder + "/")


def _progress_sender(
    ctx: Context[Any, Any] | None, rc: ServerRequestContext[Any] | None
) -> progress.Reporter | None:
    """Where the call's progress goes: to the client (the SDK drops it when the client asked for
    none; a 2026-07-28 in-memory client asks without a token), or nowhere outside a request."""
    if ctx is None or rc is None:
        return None
    return ctx.report_progress


def _in_request(ctx: Context[Any, Any] | None) -> bool:
    try:
        return ctx is not None and ctx.request_context is not None
    except ValueError:
        return False


_REQUEST: contextvars.ContextVar[ServerRequestContext[Any] | None] = contextvars.ContextVar(
    "onrecord_request", default=None
)

# Client identity per connection: reading it through the SDK's models costs more than the rest of
# the call record, and it does not change within a session.
_CLIENTS: weakref.WeakKeyDictionary[Any, tuple[str | None, str]] = weakref.WeakKeyDictionary()


_LAST_CLIENT: tuple[weakref.ref[Any], tuple[str | None, str]] | None = None


def _remember_client(session: Any, fields: tuple[str | None, str]) -> None:
    global _LAST_CLIENT
    with contextlib.suppress(TypeError):
        _LAST_CLIENT = (weakref.ref(session), fields)


def _client_fields(rc: ServerRequestContext[Any] | None) -> tuple[str | None, str, str, str]:
    """The client ("name/version"), and the record's client, protocol and request_id as JSON."""
    if rc is None:
        return None, "null", "null", "null"
    session = rc.session
    last = _LAST_CLIENT
    if last is not None and last[0]() is session:  # the connection of the previous call
        client, client_json = last[1]
        protocol = rc.protocol_version
        return (
            client,
            client_json,
            quote(protocol) if protocol is not None else "null",
            quote(str(rc.request_id)),
        )
    try:
        client, client_json = _CLIENTS[session]
    except (KeyError, TypeError):
        params = session.client_params
        info = params.client_info if params else None
        client = f"{info.name}/{info.version}" if info else None
        client_json = quote(client) if client is not None else "null"
        with contextlib.suppress(TypeError):
            _CLIENTS[session] = client, client_json
    _remember_client(session, (client, client_json))
    protocol = rc.protocol_version
    return client, client_json, quote(protocol) if protocol is not None else "null", quote(str(rc.request_id))


def _compact_text(result: CallToolResult) -> bytes | None:
    """Make the text mirror of a structured result compact JSON: the same data, fewer tokens.
    Returns the text as UTF-8 when it made it."""
    if result.structured_content is None or len(result.content) != 1:
        return None
    block = result.content[0]
    if not isinstance(block, TextContent):
        return None
    # pydantic_core writes compact JSON in a fifth of json.dumps' time. The field is a str either
    # way: set it without pydantic's assignment machinery.
    data = pydantic_core.to_json(result.structured_content)
    vars(block)["text"] = data.decode("utf-8")
    return data


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def _denied_message(qualified: str, decision: Decision) -> str:
    where = "onrecord's built-in protections" if decision.source == "built-in" else decision.source
    return (
        f"Denied by policy: {decision.reason}, from {where}. "
        f"The call to {qualified} was recorded and not run; do not retry it. "
        "If it should be allowed, a human must change the policy."
    )


def _canonical_urls(arguments: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The arguments with each URL-kind value in canonical form (the same dict when none changed)."""
    out = arguments
    for key in keys:
        value = arguments.get(key)
        if not isinstance(value, str):
            continue
        try:
            canon = canonical_url(value)
        except URLError:
            continue  # httpx cannot parse it, so no tool can fetch it; the rules see it as sent
        if canon != value:
            if out is arguments:
                out = dict(arguments)
            out[key] = canon
    return out


def _argument_of(where: str) -> str:
    """The argument a redaction's `where` (`arguments.paths[0]`) names."""
    return where.removeprefix("arguments.").split("[", 1)[0].split(".", 1)[0]


def _touches(redactions: list[Redaction], keys: frozenset[str]) -> bool:
    return any(_argument_of(r.where) in keys for r in redactions)


def _bounded(
    sent: dict[str, Any], shown: dict[str, Any], redactions: list[Redaction], keys: frozenset[str]
) -> tuple[dict[str, Any], list[Redaction]]:
    """`shown` with every path and URL value of `sent` redacted piece by piece (`redact_target`)."""
    redone = [k for k in keys if isinstance(sent.get(k), str | list) and k in shown]
    if not redone:
        return shown, redactions
    out = dict(shown)
    kept = [r for r in redactions if _argument_of(r.where) not in redone]
    for key in redone:
        value = sent[key]
        if isinstance(value, str):
            out[key], fired = redact_target(value)
            kept += [Redaction(rule, f"arguments.{key}") for rule in fired]
            continue
        items: list[Any] = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                text, fired = redact_target(item)
                kept += [Redaction(rule, f"arguments.{key}[{i}]") for rule in fired]
            else:
                text, found = redact(item, f"arguments.{key}[{i}]")
                kept += found
            items.append(text)
        out[key] = items
    return out, kept


def _pending_message(qualified: str, decision: Decision, pending: Approval) -> str:
    minutes = max(1, round((pending.expires - time.time()) / 60))
    runs = pending.what_runs()
    return (
        f"Needs approval: {decision.reason}. This client cannot ask the human directly, so the call "
        f"{qualified} {canonical(pending.arguments)} was recorded as pending approval {pending.id} "
        f"and not run (the request expires in {minutes} min). {runs + ' ' if runs else ''}Human, to decide: "
        f"`onrecord approve {pending.id}` (as your settings say; add --once, --session for the rest of "
        f"this session, or --for 10m) or `onrecord approve {pending.id} --decline`, or on the review "
        "page (`onrecord review`); `onrecord approvals` lists what is pending. Agent: tell the human, "
        "and after they approve, "
        "retry the same call with exactly the same arguments."
    )


def _session_fields(settings: Settings) -> dict[str, Any]:
    """Root, HEAD, git user and policy digest for the session_start record."""
    return {
        "version": __version__,
        "root": str(settings.root),
        "head": Git(settings.root).head_sync(),
        "git_user": _git_user(settings.root),
        "policy_digest": policy_digest(settings),
        "policy_mode": settings.mode,
        "policy_files": [str(f) for f in settings.files],
        "project_refused": settings.refused,
        "settings_warnings": settings.warnings,
    }


def _git_user(root: Path) -> str | None:
    try:
        result = procs.run_sync(
            ["git", "-c", "core.fsmonitor=false", "config", "--get", "user.email"], cwd=root, timeout_s=5
        )
    except OnrecordError:
        return None
    return result.text().strip() or None
