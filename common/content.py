"""Content is checked where it leaves (DESIGN §3): one mechanism for every server.

A result carries text from a file only if the policy would let this caller read that file now,
without asking. Two places apply the same check, through the `Gate` the accountable server sets up
for each call:

- **At the exit, always.** Every part of a result that carries file text is a `FileText` model that
  names its files. Before the result is sent, the kit walks it and withholds each `FileText` whose
  files the policy denies or asks about; a tool cannot forget to.
- **At the source, for pagination.** A tool that counts or pages over many files asks `allows(path)`
  first, so totals and cursors are computed over what may be shown.

What was left out is counted and named in the envelope (`excluded_by_policy`, `excluded_files`) with
a note. Domain modules call `allows` without knowing about MCP; outside a tool call everything is
allowed (plain domain tests).

A tool that reaches somewhere its arguments did not name (a redirect's target) asks the same policy
with `refused_call`: the decision its own call would have got with those arguments instead. Every
such decision that is not an allow (a refusal, or what shadow mode would have refused) is reported
to the call's Gate, which has the kit write it to the audit log as a `refusal` record of the running
call: a reviewer sees where the tool was steered, not only where it was sent.
"""

from __future__ import annotations

import contextvars
import functools
import re
import typing
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anyio
from pydantic import BaseModel

from common.budget import Envelope
from common.errors import OnrecordError
from common.policy import Decision, suspects

MAX_NAMED = 50
MAX_REFUSALS = 50  # refusal records per call; the result record counts every one
WITHHELD = "[withheld by policy: this text quotes a file the policy does not let you read]"
# Tracebacks and tool messages name the files they quote: `path:line: in f`, `path:line:col: E501`,
# `File "path", line 3`, `Failed to parse /abs/ruff.toml`. Every word that could be a path counts.
# Bounded pieces, no nested quantifiers: linear on any input.
_FRAME = re.compile(r'File "([^"\n]{1,4096})", line \d')
_WORD = re.compile(r"[^\s'\"`(),;=\[\]<>|{}]{1,4096}")


def quoted_files(*texts: str | None) -> list[str]:
    """The files a traceback or a tool's message quotes, in order of first appearance."""
    found: dict[str, None] = {}
    for text in texts:
        for m in _FRAME.finditer(text or ""):
            found.setdefault(m.group(1), None)
        for word in _WORD.findall(text or ""):
            path = word.split(":", 1)[0].rstrip(".")  # `path:12:5:` and a sentence's full stop
            if ("/" in path or "." in path) and not path.replace(".", "").isdigit():
                found.setdefault(path, None)
    return list(found)


def screen(text: str) -> str:
    """`text`, or WITHHELD when it quotes a file the current call may not show (for free-form text
    such as error messages and a tool's own stderr)."""
    gate = _CURRENT.get()
    if gate is None or all([gate.allows(f, follow_links=True) for f in quoted_files(text)]):
        return text
    return WITHHELD


class ContentWithheld(OnrecordError):
    """The whole result is text from a file the policy does not let this caller read."""


class Decides(Protocol):
    """(shown, reason, asks): whether text from `path` may be shown, why, and whether a human could
    allow it for one call (an ask rule) rather than only by changing the policy (a deny)."""

    def __call__(self, path: str, *, follow_links: bool) -> tuple[bool, str, bool]: ...


class DecidesCall(Protocol):
    """The decision the running tool would have got had it been called with `arguments` instead,
    when it is not an allow: a deny, or an ask that the human's approval of this call does not cover
    (either in shadow mode too, where it stops nothing). None when the policy allows it."""

    def __call__(self, arguments: Mapping[str, Any]) -> Decision | None: ...


class RecordsRefusal(Protocol):
    """Writes the audit record of one in-call refusal: the arguments the tool would have acted
    with, the decision (None: the content decision of the file `arguments["path"]`, which the
    recorder looks up), and how the tool came to them (e.g. "redirect")."""

    def __call__(self, arguments: Mapping[str, Any], decision: Decision | None, via: str | None) -> None: ...


class FileText(BaseModel):
    """A part of a result that carries text read from files (a hunk, a blame, a search hit, a
    diagnostic, a traceback). Subclasses say which files (`content_paths`) and what is left when the
    text must be withheld (`withheld`: None drops the part)."""

    def content_paths(self) -> Iterable[str]:
        path = getattr(self, "path", None)
        return [path] if isinstance(path, str) and path else []

    def withheld(self) -> FileText | None:
        return None


@dataclass
class Gate:
    """The content check of one call, and what it left out."""

    decide: Decides
    screen: tuple[str, ...] | Literal[False] = False  # see Policy.content_screen
    excluded: list[str] = field(default_factory=list)
    hidden: int = 0  # left out of listings, counted but not named
    _seen: dict[tuple[str, bool], bool] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    asked: set[str] = field(default_factory=set)
    record: RecordsRefusal | None = None  # the audit record of a refusal inside this call
    refusals: int = 0  # refusals inside this call (recorded up to MAX_REFUSALS)

    def refused(self, arguments: Mapping[str, Any], decision: Decision | None, via: str | None) -> None:
        """Note a refusal inside the call: counted, and recorded while under MAX_REFUSALS."""
        self.refusals += 1
        if self.record is not None and self.refusals <= MAX_REFUSALS:
            self.record(arguments, decision, via)

    def allows(self, path: str, *, follow_links: bool = False, name: bool = True) -> bool:
        key = (path, follow_links)
        ok = self._seen.get(key)
        if ok is None:
            ok, reason, asks = self.decide(path, follow_links=follow_links)
            self._seen[key] = ok
            if not ok:
                if name:
                    if path not in self.reasons:
                        self.excluded.append(path)
                    self.reasons[path] = reason
                    if asks:
                        self.asked.add(path)
                else:
                    self.hidden += 1
        return ok

    def filter(self, result: Any) -> Any:
        """The result with every FileText the policy withholds taken out."""
        if not isinstance(result, BaseModel) or not carries_file_text(type(result)):
            return result
        if isinstance(result, FileText) and not self.item_ok(result):
            replacement = result.withheld()
            if replacement is None:
                path = next(iter(result.content_paths()), "?")
                raise ContentWithheld(
                    f"the content of {path!r} is withheld by policy ({self.reasons.get(path, 'denied')}); "
                    "a human can allow it by changing the policy (see `onrecord policy explain`)"
                )
            result = replacement
        if isinstance(result, BaseModel):
            self._walk(result)
        return result

    def item_ok(self, item: FileText) -> bool:
        return all([self.allows(p, follow_links=True) for p in item.content_paths()])

    def _walk(self, model: BaseModel) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, list):
                kept = self._kept(value)
                if kept is not value:
                    setattr(model, name, kept)
            elif isinstance(value, dict):
                for item in value.values():
                    if isinstance(item, BaseModel):
                        self._walk(item)
            elif isinstance(value, FileText):
                if self.item_ok(value):
                    self._walk(value)
                else:
                    setattr(model, name, value.withheld())
            elif isinstance(value, BaseModel):
                self._walk(value)

    def _kept(self, items: list[Any]) -> list[Any]:
        out: list[Any] = []
        changed = False
        for item in items:
            if isinstance(item, FileText) and not self.item_ok(item):
                changed = True
                replacement = item.withheld()
                if replacement is not None:
                    out.append(replacement)
                continue
            if isinstance(item, BaseModel):
                self._walk(item)
            out.append(item)
        return out if changed else items

    def note(self) -> str | None:
        parts = []
        if self.excluded:
            named = ", ".join(repr(p) for p in self.excluded[:MAX_NAMED])
            more = f" and {len(self.excluded) - MAX_NAMED} more" if len(self.excluded) > MAX_NAMED else ""
            parts.append(f"content of {len(self.excluded)} file(s) withheld by policy: {named}{more}")
        if self.hidden:
            parts.append(f"{self.hidden} file(s) hidden by policy")
        if not parts:
            return None
        hint = "a human can allow them by changing the policy (`onrecord policy explain` shows the rule)"
        if self.asked:
            example = min(self.asked)
            hint = (
                f"{len(self.asked)} of them need a human's approval: call a tool on one file "
                f"(e.g. path={example!r}) to ask for it; a human can allow the others only by changing the policy "
                "(`onrecord policy explain` shows the rule)"
                if len(self.asked) < len(self.excluded)
                else f"they need a human's approval: call a tool on one file (e.g. path={example!r}) to ask for it"
            )
        return "; ".join(parts) + "; " + hint


@functools.cache
def carries_file_text(model: type[BaseModel]) -> bool:
    """Whether instances of `model` can hold a FileText anywhere (decided once per class)."""
    if issubclass(model, FileText):
        return True
    seen: set[type] = {model}
    todo: list[Any] = [f.annotation for f in model.model_fields.values()]
    while todo:
        hint = todo.pop()
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            if issubclass(hint, FileText):
                return True
            if hint not in seen:
                seen.add(hint)
                todo += [f.annotation for f in hint.model_fields.values()]
        todo += list(typing.get_args(hint))
    return False


_CURRENT: contextvars.ContextVar[Gate | None] = contextvars.ContextVar("onrecord_gate", default=None)
# The call check of each tool, keyed by its content check (the one a call's Gate holds): the kit
# pairs them once per tool, so a call that never asks pays nothing for it.
_CALLS: weakref.WeakKeyDictionary[Decides, DecidesCall] = weakref.WeakKeyDictionary()


def pair(decide: Decides, call: DecidesCall) -> Decides:
    """`decide`, known from now on as the content check of the tool whose calls `call` decides."""
    _CALLS[decide] = call
    return decide


def refused_call(arguments: Mapping[str, Any], *, via: str | None = None) -> Decision | None:
    """The decision that stops the running tool from acting as if it had been called with
    `arguments` (all of them, as the tool takes them): a deny, or an ask the human's approval of the
    current call does not cover. None when the policy lets it go on, and outside a tool call.

    A decision that is not an allow is recorded in the audit log as part of the running call, with
    `via` (how the tool came to these arguments, e.g. "redirect"); in shadow mode it is recorded and
    None returned, so the tool goes on as the call itself would."""
    gate = _CURRENT.get()
    if gate is None:
        return None
    check = _CALLS.get(gate.decide)
    decision = check(arguments) if check is not None else None
    if decision is None:
        return None
    gate.refused(arguments, decision, via)
    return None if decision.effective == "allow" else decision


def refused_read(path: str, *, via: str | None = None) -> None:
    """Record in the audit log, as part of the running call, that the tool was kept from reading
    `path`, a file the call may not read that it came to some other way than a path argument (a
    file a query's SQL names): a reviewer finds the call among the refused ones, with the rule."""
    gate = _CURRENT.get()
    if gate is not None and not gate.allows(path, follow_links=True):
        gate.refused({"path": path}, None, via)


def allowed_names(names: list[str]) -> list[str]:
    """The names of a listing whose files the current call may show (a file left out is counted,
    not named). Names no rule could concern are cleared in one pass; only the rest are decided."""
    gate = _CURRENT.get()
    if gate is None:
        return names
    suspect = suspects(gate.screen, names) if gate.screen is not False else None
    if suspect is None:
        return [n for n in names if gate.allows(n, name=False)]
    return [n for n in names if n not in suspect or gate.allows(n, name=False)]


def allows(path: str, *, follow_links: bool = False, name: bool = True) -> bool:
    """Whether text from `path` may appear in the current call's result (True outside a call).
    `name=False` for listings: a file left out is counted, not named."""
    gate = _CURRENT.get()
    return gate is None or gate.allows(path, follow_links=follow_links, name=name)


def refusal(path: str) -> tuple[str, bool] | None:
    """Why the current call may not show `path` and whether a human could approve it, once
    `allows(path)` said no; None when nothing refused it."""
    gate = _CURRENT.get()
    if gate is None or path not in gate.reasons:
        return None
    return gate.reasons[path], path in gate.asked


FileTextT = typing.TypeVar("FileTextT", bound=FileText)


def screened(items: list[FileTextT]) -> list[FileTextT]:
    """`items` with each one the current call may not show replaced by what `withheld` leaves (or
    dropped): for a tool that derives more from them (counts, groups) before the exit check."""
    gate = _CURRENT.get()
    if gate is None:
        return items
    out: list[FileTextT] = []
    for item in items:
        if gate.item_ok(item):
            out.append(item)
        elif (replacement := item.withheld()) is not None:
            out.append(typing.cast(FileTextT, replacement))
    return out


def enter(gate: Gate) -> contextvars.Token[Gate | None]:
    return _CURRENT.set(gate)


def leave(token: contextvars.Token[Gate | None]) -> None:
    _CURRENT.reset(token)


def wrap(fn: Callable[..., Any], *, is_async: bool) -> Callable[..., Any]:
    """`fn` (always async afterwards) with its result passed through the current call's gate, and
    the envelope told what was left out."""

    @functools.wraps(fn)
    async def filtered(**kwargs: Any) -> Any:
        if is_async:
            result = await fn(**kwargs)
        else:
            result = await anyio.to_thread.run_sync(functools.partial(fn, **kwargs))
        gate = _CURRENT.get()
        if gate is None:
            return result
        result = gate.filter(result)
        if gate.excluded or gate.hidden:
            _tell_envelope(result, gate)
        return result

    return filtered


def _tell_envelope(result: Any, gate: Gate) -> None:
    if not isinstance(result, Envelope):
        return
    result.excluded_by_policy = len(gate.excluded) + gate.hidden
    result.excluded_files = gate.excluded[:MAX_NAMED]
    if note := gate.note():
        result.note = f"{result.note}; {note}" if result.note else note
