"""`onrecord review`: a local web page over the audit directory (DESIGN §4).

Sessions, a session's timeline with filters, the chain of every file, the commits made in a
session's root, and the pending approvals, which are the only thing the page changes (through
`clients.cli.decide_approval`, so a decision leaves the same audit record as `onrecord approve`).

Every request needs the random token printed at start; the server listens on 127.0.0.1 only. A
record is data: every value from a record has its control characters made visible
(`common.visible`) and is then HTML-escaped, and the page runs no script at all.

Server-rendered HTML from plain f-strings and `html.escape`: the pages are a few tables and
forms, and a template engine would be one more dependency (jinja2 is not installed) for no safety
the single `_e` escape does not give.
"""

from __future__ import annotations

import hmac
import html
import json
import time
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clients import review
from common.approvals import format_targets, what_runs
from common.errors import OnrecordError
from common.visible import visible

if TYPE_CHECKING:
    from common.approvals import ApprovalStore
    from common.approvals import Scope as GrantScope

HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # the token is in every URL: no other site may see one
    "cache-control": "no-store",
}
DECISIONS = ("allow", "deny", "ask")
MAX_ROWS = 1000  # calls on one timeline page
STATUSES = (
    "ok",
    "denied",
    "declined",
    "pending_approval",
    "input_required",
    "tool_error",
    "invalid_arguments",
    "unknown_tool",
    "crashed",
    "timeout",
    "cancelled",
    "protocol_error",
    "no result",
)
SCOPES: dict[GrantScope, str] = {
    "settings": "as the settings say",
    "once": "once",
    "session": "for that server session",
    "for": "for a period:",
}


def _e(value: object) -> str:
    """A value from a record as HTML text: control characters shown, then markup escaped."""
    return html.escape(visible("" if value is None else str(value)), quote=True)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


# --------------------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """What the reviewer narrowed a list to, from the query string; empty means any."""

    decision: str = ""
    status: str = ""
    server: str = ""
    tool: str = ""
    q: str = ""

    @classmethod
    def of(cls, request: Request) -> Filters:
        p = request.query_params
        return cls(*(p.get(name, "").strip() for name in ("decision", "status", "server", "tool", "q")))

    def params(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}

    def keeps_call(self, call: review.Call) -> bool:
        tool = str(call.call.get("tool", ""))
        server, _, name = tool.partition(".")
        text = (_json(call.call) + _json(call.result) + _json(call.approvals) + _json(call.refusals)).lower()
        # A call whose tool the policy kept from a target while it ran was denied or asked in part.
        actions = {call.decision.get("action")} | {
            (r.get("decision") or {}).get("action") for r in call.refusals
        }
        return (
            (not self.decision or self.decision in actions)
            and (not self.status or call.status == self.status)
            and (not self.server or server == self.server)
            and (not self.tool or self.tool in (tool, name))
            and (not self.q or self.q.lower() in text)
        )

    def keeps_session(self, row: dict[str, Any]) -> bool:
        """Sessions are filtered by their summary: a decision or a status keeps the sessions with
        such calls (deny: denied, ask: asked, an error status: errors); tool applies inside one."""
        by_decision = {"deny": "denied", "ask": "asked"}.get(self.decision, "calls")
        by_status = {"ok": "calls", "no result": "calls", "denied": "denied"}.get(self.status, "errors")
        text = " ".join(str(row.get(f) or "") for f in ("session", "server", "client", "user", "root"))
        return (
            (
                not self.decision
                or bool(row.get(by_decision))
                or (by_decision != "calls" and bool(row.get("refused")))
            )
            and (not self.status or bool(row.get(by_status)))
            and (not self.server or row.get("server") == self.server)
            and (not self.q or self.q.lower() in text.lower())
        )


# ----------------------------------------------------------------------------------------- pages


class Pages:
    """The page handlers for one audit directory and one token."""

    def __init__(self, directory: Path, token: str, policy: str | None, max_rows: int) -> None:
        self.directory = directory
        self.token = token
        self.policy = policy
        self.max_rows = max_rows

    def url(self, path: str, **params: str) -> str:
        return f"{path}?{urlencode({'token': self.token, **params})}"

    def link(self, path: str, text: str, **params: str) -> str:
        return f'<a href="{html.escape(self.url(path, **params))}">{text}</a>'

    def page(self, title: str, body: str, status: int = 200) -> HTMLResponse:
        pending = len(_store(self.policy).pending())
        nav = " ".join(
            [
                self.link("/", "Sessions"),
                self.link("/approvals", f"Approvals ({pending} pending)"),
                self.link("/chains", "Chains"),
            ]
        )
        css = html.escape(self.url("/static/review.css"))
        return HTMLResponse(
            "<!doctype html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><title>{_e(title)} · onrecord review</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="stylesheet" href="{css}"></head>\n'
            f"<body><header><span class=brand>onrecord review</span><nav>{nav}</nav>"
            f"<span class=dir>{_e(self.directory)}</span></header>\n"
            f"<main><h1>{_e(title)}</h1>\n{body}</main></body></html>\n",
            status_code=status,
        )

    def filter_form(self, path: str, filters: Filters, servers: list[str], tool: bool) -> str:
        def select(name: str, options: list[str], chosen: str) -> str:
            options = [*options, chosen] if chosen and chosen not in options else options
            items = "".join(
                f'<option value="{_e(o)}"{" selected" if o == chosen else ""}>{_e(o)}</option>'
                for o in options
            )
            return (
                f'<label>{name} <select name="{name}"><option value="">any</option>{items}</select></label>'
            )

        tool_input = (
            f'<label>tool <input name="tool" value="{_e(filters.tool)}" size="16"></label>' if tool else ""
        )
        return (
            f'<form class=filters method="get" action="{html.escape(path)}">'
            f'<input type="hidden" name="token" value="{_e(self.token)}">'
            + select("decision", list(DECISIONS), filters.decision)
            + select("status", list(STATUSES), filters.status)
            + select("server", servers, filters.server)
            + tool_input
            + f'<label>text <input name="q" value="{_e(filters.q)}" size="20"></label>'
            + '<button type="submit">Filter</button> '
            + self.link(path, "clear")
            + "</form>\n"
        )

    # ------------------------------------------------------------------------------- sessions

    def sessions(self, request: Request) -> HTMLResponse:
        filters = Filters.of(request)
        rows = review.sessions(self.directory)
        servers = sorted({str(r["server"]) for r in rows if r.get("server")})
        shown = [r for r in reversed(rows) if filters.keeps_session(r)]
        body = self.filter_form("/", filters, servers, tool=False)
        body += f"<p>{len(shown)} of {len(rows)} session(s), newest first.</p>\n"
        if shown:
            head = [
                "started",
                "server",
                "client",
                "user",
                "root",
                "calls",
                "denied",
                "asked",
                "errors",
                "refused",
                "chain",
                "ended",
            ]
            body += "<table class=sessions><thead><tr>"
            body += "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>\n"
            for r in shown:
                chain = "ok" if r.get("verified") else "BROKEN"
                body += (
                    f"<tr><td>{self.link('/session/' + quote(str(r['session']), safe=''), _e(r.get('started') or r['session']), **filters.params())}</td>"
                    f"<td>{_e(r.get('server'))}</td><td>{_e(r.get('client'))}</td>"
                    f"<td>{_e(r.get('user'))}</td><td class=path>{_e(r.get('root'))}</td>"
                    f"<td class=n>{_e(r.get('calls'))}</td><td class=n>{_e(r.get('denied'))}</td>"
                    f"<td class=n>{_e(r.get('asked'))}</td><td class=n>{_e(r.get('errors'))}</td>"
                    f"<td class=n>{_e(r.get('refused'))}</td>"
                    f"<td class=chain-{chain.lower()}>{chain}</td><td>{_e(r.get('ended'))}</td></tr>\n"
                )
            body += "</tbody></table>\n"
        return self.page("Sessions", body)

    # ------------------------------------------------------------------------------- timeline

    def session(self, request: Request) -> HTMLResponse:
        from common.audit import find_session, verify_file

        name = request.path_params["name"]
        path = find_session(self.directory, name)
        if path is None:
            return self.page("No such session", f"<p>No session {_e(name)} in this directory.</p>", 404)
        report = verify_file(path)
        start = next((r for r in report.records if r.get("type") == "session_start"), {})
        end = next((r for r in report.records if r.get("type") == "session_end"), None)
        filters = Filters.of(request)
        everything = review.calls(report.records)
        shown = [c for c in everything if filters.keeps_call(c)]
        servers = sorted({str(c.call.get("tool", "")).partition(".")[0] for c in everything})
        facts = [
            ("server", start.get("server")),
            ("started", start.get("started")),
            ("ended", end.get("ts") if end else "no session_end (still running, or cut off)"),
            ("user", start.get("os_user")),
            ("host", start.get("host")),
            ("client", start.get("client")),
            ("root", start.get("root")),
            ("HEAD", start.get("head")),
            ("policy", start.get("policy_mode")),
            ("file", path.relative_to(self.directory).as_posix()),
        ]
        body = "<dl class=facts>" + "".join(
            f"<dt>{k}</dt><dd>{_e(v)}</dd>" for k, v in facts if v is not None
        )
        chain = "verified" if report.ok else "BROKEN"
        body += f"<dt>chain</dt><dd class=chain-{'ok' if report.ok else 'broken'}>{chain}</dd></dl>\n"
        body += _problems(report.problems)
        here = "/session/" + quote(path.stem, safe="")
        body += self.filter_form(here, filters, servers, tool=True)
        body += f"<p>{len(shown)} of {len(everything)} call(s).</p>\n"
        if len(shown) > self.max_rows:  # a page a browser can still show; the filters find the rest
            body += f"<p class=notice>Showing the first {self.max_rows}: narrow them with the filters.</p>\n"
        body += _timeline(shown[: self.max_rows])
        body += self.commits(start, report.records)
        return self.page(f"Session {path.stem}", body)

    def commits(self, start: dict[str, Any], records: list[dict[str, Any]]) -> str:
        root, started = start.get("root"), start.get("started")
        out = "<h2>Commits in its root during and after it</h2>\n"
        if not isinstance(root, str) or not isinstance(started, str) or not Path(root).is_dir():
            return out + "<p>The session names no root that exists here.</p>\n"
        last = next((r.get("ts") for r in reversed(records) if isinstance(r.get("ts"), str)), None)
        try:
            found = review.commits_since(Path(root), started, last)
        except OnrecordError as exc:
            return out + f"<p>{_e(exc)}</p>\n"
        if not found:
            return out + "<p>No commits since the session started.</p>\n"
        rows = "".join(
            f"<tr><td><code>{_e(c.sha[:12])}</code></td><td>{_e(c.committed)}</td>"
            f"<td>{'during' if c.during else 'after'}</td><td>{_e(c.author)}</td><td>{_e(c.subject)}</td></tr>\n"
            for c in found
        )
        return (
            out + "<table class=commits><thead><tr><th>commit</th><th>committed</th><th>when</th>"
            f"<th>author</th><th>subject</th></tr></thead><tbody>\n{rows}</tbody></table>\n"
        )

    # --------------------------------------------------------------------------------- chains

    def chains(self, request: Request) -> HTMLResponse:
        from common.audit import verify_file

        rows = ""
        bad = 0
        for path in _files(self.directory):
            rep = verify_file(path, keep=False)
            bad += not rep.ok
            errors = sum(p.severity == "error" for p in rep.problems)
            state = "verified" if rep.ok else f"BROKEN ({errors} problem(s))"
            rows += (
                f"<tr><td>{self.link('/session/' + quote(path.stem, safe=''), _e(path.relative_to(self.directory).as_posix()))}</td>"
                f"<td class=n>{rep.count}</td><td class=chain-{'ok' if rep.ok else 'broken'}>{state}</td>"
                f"<td>{_problems(rep.problems)}</td></tr>\n"
            )
        if not rows:
            return self.page("Chains", "<p>No audit files in this directory.</p>")
        summary = "every chain verified" if not bad else f"{bad} file(s) with a broken chain"
        body = (
            f"<p>{summary}.</p>\n<table class=chains><thead><tr><th>file</th><th>records</th>"
            f"<th>chain</th><th>problems</th></tr></thead><tbody>\n{rows}</tbody></table>\n"
        )
        return self.page("Chains", body)

    # ------------------------------------------------------------------------------ approvals

    def approvals(self, request: Request) -> HTMLResponse:
        store = _store(self.policy)
        body = ""
        done = request.query_params.get("done", "")
        if done:
            try:
                a = store.get(done)
                body += f"<p class=notice>Approval {_e(a.id)} for {_e(a.call)} is {_e(a.status)}."
                body += " The agent may now retry the same call.</p>\n" if a.status == "granted" else "</p>\n"
            except OnrecordError as exc:
                body += f"<p class=notice>{_e(exc)}</p>\n"
        pending = store.pending()
        if not pending:
            return self.page("Approvals", body + "<p>No pending approvals.</p>")
        body += (
            "<table class=approvals><thead><tr><th>id</th><th>call</th><th>root</th><th>arguments and targets</th>"
            "<th>reason</th><th>expires in</th><th>decision</th></tr></thead><tbody>\n"
        )
        for a in pending:
            scopes = "".join(f'<option value="{k}">{v}</option>' for k, v in SCOPES.items())
            form = (
                f'<form method="post" action="{html.escape(self.url("/approvals/" + quote(a.id, safe="")))}">'
                f'<input type="hidden" name="token" value="{_e(self.token)}">'
                f'<select name="scope" aria-label="scope">{scopes}</select>'
                '<input name="for" size="4" placeholder="10m" aria-label="period">'
                '<button type="submit" name="action" value="approve">Approve</button>'
                '<button type="submit" name="action" value="decline">Decline</button></form>'
            )
            body += (
                f'<tr id="approval-{_e(a.id)}"><td><code>{_e(a.id)}</code></td><td>{_e(a.call)}</td>'
                f"<td class=path>{_e(a.root)}</td><td><code>{_e(_json(a.arguments))}</code>"
                f"{_what_runs(a.what_runs())}</td>"
                f"<td>{_e(a.reason)}</td><td class=n>{max(0, int(a.expires - time.time()))}s</td>"
                f"<td>{form}</td></tr>\n"
            )
        return self.page("Approvals", body + "</tbody></table>\n")

    async def decide(self, request: Request) -> Response:
        from clients.cli import decide_approval, parse_duration

        form = await request.form()
        given = form.get("token") or request.headers.get("x-onrecord-token")
        if not isinstance(given, str) or not _same(given, self.token):
            # The URL's token alone is not enough to change anything: a decision carries it in
            # the form (or a header), which no other site can make a browser send.
            return Response("403: a decision needs the token in the form", 403)
        approval_id = request.path_params["approval_id"]
        action, asked = form.get("action"), form.get("scope") or "settings"
        by_name: dict[object, GrantScope] = {known: known for known in SCOPES}
        scope = by_name.get(asked)
        try:
            if action not in ("approve", "decline") or scope is None:
                raise OnrecordError("the form must say approve or decline, and a known scope")
            for_s = None
            grant_scope: GrantScope = scope if action == "approve" else "settings"
            if grant_scope == "for":
                for_s = parse_duration(str(form.get("for") or ""), "the period")
            decided = partial(
                decide_approval,
                approval_id,
                grant=action == "approve",
                scope=grant_scope,
                for_s=for_s,
                policy=self.policy,
                audit_dir=self.directory,
                via="onrecord review",
            )
            approval = await anyio.to_thread.run_sync(decided)
        except OnrecordError as exc:
            return self.page("Approval not changed", f"<p class=notice>{_e(exc)}</p>", 409)
        return RedirectResponse(self.url("/approvals", done=approval.id), status_code=303)

    def css(self, request: Request) -> Response:
        text = resources.files("clients").joinpath("static", "review.css").read_text(encoding="utf-8")
        return Response(text, media_type="text/css")


def _what_runs(text: str) -> str:
    """What an approval or call acts on (the targets the policy matched), and any warning that
    redaction hid part of what is shown: a human decides on this line, not on the arguments."""
    return f"<div class=targets>{_e(text)}</div>" if text else ""


def _timeline(shown: list[review.Call]) -> str:
    if not shown:
        return "<p>No calls match.</p>\n"
    head = ["seq", "time", "tool", "decision", "rule and reason", "arguments", "status", "duration", "detail"]
    out = "<table class=timeline><thead><tr>" + "".join(f"<th>{h}</th>" for h in head)
    out += "</tr></thead><tbody>\n"
    for c in shown:
        d, r = c.decision, c.result or {}
        action = str(d.get("action", ""))
        shadow = " (shadow)" if d.get("enforced") is False and action != "allow" else ""
        source = f" [from {d['source']}]" if d.get("source") else ""
        why = f"why: {d.get('reason')}{source}" if d else ""
        detail = r.get("error") or (f"{r['size']} bytes" if r.get("size") is not None else "")
        approvals = "".join(
            f"<div class=approval>approval {_e(a.get('action'))} via {_e(a.get('via'))}"
            f"{' by ' + _e(a['by']) if a.get('by') else ''}</div>"
            for a in c.approvals
        )
        refusals = "".join(_refusal(x) for x in c.refusals)
        duration = f"{r['duration_ms']} ms" if r.get("duration_ms") is not None else ""
        out += (
            f"<tr class=d-{_css_word(action, DECISIONS)}>"
            f"<td class=n>{_e(c.call.get('seq'))}</td><td>{_e(review.clock(c.call))}</td>"
            f"<td><code>{_e(c.call.get('tool'))}</code></td><td>{_e(action + shadow)}</td>"
            f"<td><code class=rule>{_e(d.get('rule'))}</code><div class=why>{_e(why)}</div></td>"
            f"<td><code class=args>{_e(_json(c.call.get('arguments')))}</code>{_call_targets(c.call)}</td>"
            f"<td class=s-{_css_word(c.status, ('ok', 'denied', 'pending_approval'))}>{_e(c.status)}</td>"
            f"<td class=n>{_e(duration)}</td><td>{_e(detail)}{approvals}{refusals}</td></tr>\n"
        )
    return out + "</tbody></table>\n"


def _refusal(record: dict[str, Any]) -> str:
    """A refusal inside a call, under the call: what its tool was kept from, the rule, and why."""
    decision = record.get("decision")
    d: dict[str, Any] = decision if isinstance(decision, dict) else {}
    action = str(d.get("action", ""))
    shadow = d.get("enforced") is False
    what = f"{action} (shadow: followed)" if shadow else f"{action}: not reached"
    via = f" via {record['via']}" if record.get("via") else ""
    targets = record.get("targets")
    shown = (
        format_targets(targets) if isinstance(targets, dict) and targets else _json(record.get("arguments"))
    )
    source = f" [from {d['source']}]" if d.get("source") else ""
    return (
        f"<div class='refusal d-{_css_word(action, DECISIONS)}'>refused{_e(via)}, {_e(what)}: "
        f"<code>{_e(shown)}</code> <code class=rule>{_e(d.get('rule'))}</code>"
        f"<div class=why>why: {_e(d.get('reason'))}{_e(source)}</div></div>"
    )


def _call_targets(call: dict[str, Any]) -> str:
    targets = call.get("targets")
    if not isinstance(targets, dict):
        return ""
    hidden = [str(r.get("rule")) for r in call.get("redactions") or [] if isinstance(r, dict)]
    return _what_runs(
        what_runs({str(k): v if isinstance(v, list) else [v] for k, v in targets.items()}, hidden)
    )


def _css_word(value: str, known: tuple[str, ...]) -> str:
    """A class name from a fixed list, never from a record."""
    return value if value in known else "other"


def _problems(problems: list[Any]) -> str:
    if not problems:
        return ""
    items = "".join(
        f"<li class={p.severity}>line {p.line}: {_e(p.severity)}: {_e(p.kind)}: {_e(p.detail)}</li>"
        for p in problems
    )
    return f"<ul class=problems>{items}</ul>\n"


def _files(directory: Path) -> list[Path]:
    from common.audit import audit_files

    return audit_files(directory)


def _store(policy: str | None) -> ApprovalStore:
    from clients.cli import approval_store

    return approval_store(policy)


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode("utf-8"))


# ------------------------------------------------------------------------------------ the app


class _Guard:
    """Refuses every request without the token (in the query string or the X-Onrecord-Token
    header) and puts the strict headers on every response, refusals included."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def strict(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        request = Request(scope)
        given = request.query_params.get("token") or request.headers.get("x-onrecord-token") or ""
        if not _same(given, self.token):
            refused = Response(
                "403: this page needs the token in the URL `onrecord review` printed\n",
                403,
                media_type="text/plain",
            )
            await refused(scope, receive, strict)
            return
        await self.app(scope, receive, strict)


def build_app(directory: Path, token: str, *, policy: str | None = None, max_rows: int = MAX_ROWS) -> ASGIApp:
    """The review page for one audit directory; `policy` is the extra policy file the servers run
    with (its [approvals] settings bound what a grant allows, as for `onrecord approve`)."""
    pages = Pages(Path(directory), token, policy, max_rows)
    routes = [
        Route("/", pages.sessions),
        Route("/session/{name}", pages.session),
        Route("/chains", pages.chains),
        Route("/approvals", pages.approvals),
        Route("/approvals/{approval_id}", pages.decide, methods=["POST"]),
        Route("/static/review.css", pages.css),
    ]
    return _Guard(Starlette(routes=routes), token)
