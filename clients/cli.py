"""The `onrecord` command: serve, call, audit, policy, approve, demo, install, doctor.

Heavy imports (the MCP SDK, the servers) happen inside the subcommands that need them, so
`onrecord audit` and `onrecord approve` answer at once and `serve` starts as fast as the SDK allows.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from common.errors import OnrecordError
from common.visible import visible

if TYPE_CHECKING:
    from common.approvals import Approval, ApprovalStore, Scope


def _settings(args: argparse.Namespace) -> Any:
    from common.config import load_settings
    from servers import SERVERS

    return load_settings(args.root, policy_file=args.policy, sections=SERVERS)


def _parse_json(text: str | None, what: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OnrecordError(
            f'{what} is not valid JSON ({exc.msg} at char {exc.pos}); e.g. \'{{"path": "README.md"}}\''
        ) from exc
    if not isinstance(value, dict):
        raise OnrecordError(f'{what} must be a JSON object of arguments, e.g. \'{{"path": "README.md"}}\'')
    return value


# ------------------------------------------------------------------------------------- commands


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=os.environ.get("ONRECORD_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    # Start-up makes a few hundred thousand objects that live as long as the process (the SDK's
    # models, above all) and next to no garbage, yet the cyclic collector would walk them about 180
    # times meanwhile: a tenth of the start. It resumes once the server is built, with those objects
    # frozen (gc.freeze), so neither its first pass nor any later one walks them again; the few
    # cycles start-up left (about 1,000 objects) are never freed.
    gc.disable()
    try:
        from servers import build

        server = build(args.server, _settings(args))
    finally:
        gc.freeze()
        gc.enable()
    try:
        if args.transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=args.host, port=args.port)
    finally:
        server.audit.close()
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    import anyio
    from mcp import MCPError

    from servers import ALL, SERVERS

    arguments = _parse_json(args.json, "the call's arguments")
    if args.server != ALL and args.server not in SERVERS:
        raise OnrecordError(f"unknown server {args.server!r}; choose one of: {', '.join([*SERVERS, ALL])}")
    _settings(args)  # a bad root or settings file is one clear line here, not a failed connection
    try:
        return anyio.run(_call, args, arguments)
    except BrokenPipeError:
        raise  # our reader left; main() ends quietly
    except OnrecordError:
        raise
    except (MCPError, OSError, BaseExceptionGroup) as exc:
        if isinstance(exc, BaseExceptionGroup) and isinstance(cause := _innermost(exc), OnrecordError):
            raise cause from exc
        raise OnrecordError(
            f"the {args.server} server stopped before answering ({_first_cause(exc)}); "
            "its own message, if any, is printed above"
        ) from exc


def _innermost(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _first_cause(exc: BaseException) -> str:
    exc = _innermost(exc)
    return str(exc) or type(exc).__name__


async def _result(args: argparse.Namespace, arguments: dict[str, Any]) -> Any:
    from mcp import Client
    from mcp.types import ElicitResult

    from clients.stdio import server_params

    async def ask_human(context: Any, params: Any) -> ElicitResult:
        sys.stderr.write(f"\n{params.message}\nApprove? [y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        return ElicitResult(action="accept", content={"approve": answer in ("y", "yes")})

    params = server_params(args.server, Path(args.root).resolve(), policy=args.policy)
    callback = ask_human if sys.stdin.isatty() else None
    async with Client(params, mode="legacy", elicitation_callback=callback) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        if args.tool not in tools:
            raise OnrecordError(
                f"the {args.server} server has no tool {args.tool!r}; its tools: {', '.join(sorted(tools))}"
            )
        result = await client.call_tool(args.tool, arguments)
    if result.is_error and _invalid_arguments(tools[args.tool].input_schema, arguments):
        # Bad input, like a bad root: the server's own one-line message, and exit 2.
        text = " ".join(str(getattr(block, "text", block)) for block in result.content)
        raise OnrecordError(" ".join(text.split()))
    if result.structured_content is not None and not result.is_error:
        print(json.dumps(result.structured_content, indent=2, ensure_ascii=False))
    else:
        for block in result.content:
            print(getattr(block, "text", block))
    return result


def _invalid_arguments(schema: dict[str, Any], arguments: dict[str, Any]) -> bool:
    """Whether the arguments break the tool's input schema (unknown names, wrong types, bounds)."""
    import jsonschema

    try:
        jsonschema.validate(arguments, schema)
    except jsonschema.ValidationError:
        return True
    except jsonschema.SchemaError:
        return False
    return False


async def _call(args: argparse.Namespace, arguments: dict[str, Any]) -> int:
    result = await _result(args, arguments)
    return 1 if result.is_error else 0


def cmd_gates(args: argparse.Namespace) -> int:
    """check_gates from CI: the same server, settings and audit log; exit 1 on a failing verdict."""
    from common.config import server_section
    from servers.evals.settings import EvalsSettings

    options = server_section(_settings(args), "evals", EvalsSettings)
    arguments: dict[str, Any] = {"candidate": args.candidate}
    if args.baseline:
        arguments["baseline"] = args.baseline
    args.server, args.tool = "evals", "check_gates"
    return _verdict(args, arguments, strict=args.fail_on_inconclusive or options.fail_on_inconclusive)


def cmd_readiness(args: argparse.Namespace) -> int:
    """readiness_report from CI: the same server, settings and audit log; exit 1 on a failing verdict."""
    from common.config import server_section
    from servers.deploy.settings import DeploySettings

    options = server_section(_settings(args), "deploy", DeploySettings)
    arguments: dict[str, Any] = {}
    if args.checks:
        arguments["checks"] = [c.strip() for c in args.checks.split(",") if c.strip()]
    if args.base:
        arguments["base"] = args.base
    args.server, args.tool = "deploy", "readiness_report"
    return _verdict(args, arguments, strict=args.fail_on_inconclusive or options.fail_on_inconclusive)


def _verdict(args: argparse.Namespace, arguments: dict[str, Any], *, strict: bool) -> int:
    """Call a tool whose result has a `verdict`: exit 0 on a pass, 1 on fail (and on inconclusive
    when strict), 2 when the call itself failed."""
    import anyio

    async def call() -> int:
        result = await _result(args, arguments)
        if result.is_error or result.structured_content is None:
            return 2
        verdict = result.structured_content.get("verdict")
        failing = verdict == "fail" or (strict and verdict == "inconclusive")
        print(f"verdict: {verdict}", file=sys.stderr)
        return 1 if failing else 0

    from mcp import MCPError

    try:
        return anyio.run(call)
    except BrokenPipeError:
        raise
    except (MCPError, OSError, BaseExceptionGroup) as exc:
        raise OnrecordError(
            f"the {args.server} server stopped before answering ({_first_cause(exc)})"
        ) from exc


def _audit_dir(args: argparse.Namespace) -> Path:
    if args.dir:
        return Path(args.dir)
    from common.config import load_settings

    try:
        from servers import SERVERS

        return load_settings(Path.cwd(), sections=SERVERS).audit_path
    except OnrecordError:
        from common.config import state_dir

        return state_dir() / "audit"


def cmd_audit(args: argparse.Namespace) -> int:
    from clients import review
    from common.audit import audit_files, find_session, verify_dir, verify_file

    directory = _audit_dir(args)
    if args.action == "verify" and not audit_files(directory):
        # Nothing to review is not "all verified": a wrong --dir must not pass as a clean log.
        state = "does not exist" if not directory.exists() else "holds no audit files"
        raise OnrecordError(
            f"the audit directory {str(directory)!r} {state}; pass --dir, or check audit.dir in the settings "
            "(`onrecord policy explain` names the files read)"
        )
    if args.action == "sessions":
        rows = review.sessions(directory)
        print(json.dumps(rows, indent=2) if args.json else review.render_sessions(rows))
        return 0
    if args.action == "show":
        if not args.session:
            raise OnrecordError("audit show needs a SESSION; `onrecord audit sessions` lists them")
        path = find_session(directory, args.session)
        if path is None:
            raise OnrecordError(
                f"no single session matches {args.session!r} in {str(directory)!r}; see `onrecord audit sessions`"
            )
        report = verify_file(path)
        if args.json:
            print(
                json.dumps(
                    {"records": report.records, "problems": [p.as_record() for p in report.problems]},
                    indent=2,
                )
            )
        else:
            print(review.render_timeline(report.records))
            print(review.render_verify([report]))
        return 0 if report.ok else 1
    if args.action == "for-commit":
        if not args.session:
            raise OnrecordError(
                "audit for-commit needs a commit, e.g. `onrecord audit for-commit HEAD --root .`"
            )
        commit, found = review.for_commit(directory, Path(args.root), args.session)
        if args.json:
            print(
                json.dumps(
                    {"commit": commit, "sessions": [{"session": p.stem, "records": r} for p, r in found]},
                    indent=2,
                )
            )
        else:
            print(review.render_for_commit(commit, found))
        return 0
    if args.action == "tail":
        rows = review.tail(directory, max(args.n, 0), args.only)
        if args.json:
            print(json.dumps([{"session": p.stem, **r} for p, r in rows], indent=2))
        else:
            print(review.render_tail(rows))
        return 0
    reports = verify_dir(directory, keep=False)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "file": r.file,
                        "records": r.count,
                        "ok": r.ok,
                        "problems": [p.as_record() for p in r.problems],
                    }
                    for r in reports
                ],
                indent=2,
            )
        )
    else:
        print(review.render_verify(reports))
    return 0 if all(r.ok for r in reports) else 1


def cmd_policy(args: argparse.Namespace) -> int:
    from servers import build

    qualified = args.call
    server_name, sep, tool = qualified.partition(".")
    if not sep or not tool:
        raise OnrecordError(f"{qualified!r} must be SERVER.TOOL, e.g. repo.read_file")
    server = build(server_name, _settings(args))
    import anyio

    known = {t.name for t in anyio.run(server.list_tools)}
    decision = server.explain(tool, _parse_json(args.json, "the arguments"))
    out = {
        "call": qualified,
        **decision.as_record(),
        "tool_known": tool in known,
        "project_refused": server.config.refused,
        "warnings": server.config.warnings,
    }
    if args.as_json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"{qualified}: {decision.action.upper()}"
            + ("" if decision.enforced else " (shadow mode: recorded, not enforced)")
        )
        # main() escapes control characters but keeps newlines; a path, rule or refusal from a project
        # (hostile input) must not forge lines of its own, so each field is escaped whole.
        print(f"  rule:   {visible(str(decision.rule))}")
        print(f"  from:   {visible(str(decision.source))}")
        print(f"  reason: {visible(decision.reason)}")
        if tool not in known:
            print(f"  note:   {server_name} has no tool {tool!r}; known: {', '.join(sorted(known))}")
        for warning in server.config.warnings:
            print(f"  warning: {visible(warning)}")
        if server.config.refused:
            print("The project file tried these, and was not allowed (a project file may only tighten):")
            for line in server.config.refused:
                print(f"  - {visible(line)}")
    return 0


def approval_store(policy: str | None, root: str = "") -> ApprovalStore:
    """The approval store, with TTL and uses from the humans' settings; for an approval's `root`,
    that project's file counts too (it can only lower them)."""
    from common.approvals import ApprovalStore
    from common.config import load_settings
    from servers import SERVERS

    project = Path(root) if root and Path(root).is_dir() else None
    settings = load_settings(
        project or Path.cwd(), policy_file=policy, use_project=project is not None, sections=SERVERS
    )
    return ApprovalStore.for_settings(settings)


def decide_approval(
    approval_id: str,
    *,
    grant: bool,
    scope: Scope = "settings",
    for_s: int | None = None,
    policy: str | None,
    audit_dir: Path,
    via: str,
) -> Approval:
    """Grant or decline a pending approval as the human running this, bounded by the humans'
    settings for its root, and record the decision in the audit log: `onrecord approve` and the
    review page decide through here, so both leave the same record.

    Raises:
        ApprovalError: the ID is unknown, or the approval is no longer pending.
    """
    pending = approval_store(policy).get(approval_id)
    approval = approval_store(policy, pending.root).decide(
        approval_id, grant=grant, by=_who(), scope=scope, for_s=for_s
    )
    _approval_audit(audit_dir, approval, via)
    return approval


def cmd_approve(args: argparse.Namespace) -> int:
    scope, for_s = "settings", None
    if args.once:
        scope = "once"
    elif args.session:
        scope = "session"
    elif args.for_:
        scope, for_s = "for", parse_duration(args.for_)
    if args.decline and scope != "settings":
        raise OnrecordError("--decline takes no --once, --session or --for")
    approval = decide_approval(
        args.id,
        grant=not args.decline,
        scope=scope,
        for_s=for_s,
        policy=args.policy,
        audit_dir=_audit_dir(args),
        via="onrecord approve",
    )
    verb = "granted" if approval.status == "granted" else "declined"
    print(
        f"approval {approval.id} {verb}: {approval.call} {json.dumps(approval.arguments, sort_keys=True)} "
        f"in {approval.root or '(unknown root)'}"
    )
    if runs := approval.what_runs():
        from common.visible import visible

        print(visible(runs))
    if verb == "granted":
        minutes = max(1, round((approval.expires - time.time()) / 60))
        if approval.scope == "session":
            uses = "any number of times in the session that asked, at most a day"
        elif approval.scope == "for":
            uses = f"any number of times for {minutes} min"
        else:
            times = "once" if approval.uses_left == 1 else f"{approval.uses_left} times"
            uses = f"{times}, within {minutes} min"
        print(f"The agent may now retry the same call with the same arguments ({uses}).")
    return 0


def parse_duration(text: str, what: str = "--for") -> int:
    """Seconds in '90s', '10m', '2h' (or a bare number of seconds)."""
    import re

    found = re.fullmatch(r"\s*(\d{1,6})\s*([smh]?)\s*", text)
    if not found:
        raise OnrecordError(f"{what} {text!r} is not a duration; write e.g. 90s, 10m or 2h")
    return int(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[found.group(2)]


def _approval_audit(directory: Path, approval: Any, via: str) -> None:
    from common.audit import AuditLog

    log = AuditLog(directory, "cli")
    log.write(
        "approval",
        {
            "approval_id": approval.id,
            "action": approval.status,
            "scope": approval.scope,
            "via": via,
            "by": approval.decided_by,
            "call": approval.call,
            "server": approval.server,
            "root": approval.root,
            "arguments": approval.arguments,
            "targets": approval.targets,
            "redacted": approval.redacted,
        },
    )
    log.close()


def cmd_approvals(args: argparse.Namespace) -> int:
    from clients.review import clip, table
    from common.approvals import format_targets

    store = approval_store(None)
    if args.action == "revoke":
        if not args.id:
            raise OnrecordError("approvals revoke needs an ID; `onrecord approvals --all` lists them")
        revoked = store.revoke(args.id, by=_who())
        _approval_audit(_audit_dir(args), revoked, "onrecord approvals revoke")
        print(f"approval {revoked.id} revoked: {revoked.call} in {revoked.root or '(unknown root)'}")
        return 0
    items = store.all() if args.all else store.pending()
    if args.json:
        print(json.dumps([a.as_record() for a in items], indent=2))
        return 0
    if not items:
        print("no pending approvals")
        return 0
    print(
        table(
            ["id", "status", "call", "root", "arguments", "acts on", "expires in", "reason"],
            [
                [
                    a.id,
                    a.status,
                    a.call,
                    a.root or "(none: older onrecord)",
                    clip(json.dumps(a.arguments, sort_keys=True), 60),
                    # What will run, whole (a human decides on it), and a mark when redaction hid part
                    # of what is shown.
                    format_targets(a.targets)
                    + (f" [PART HIDDEN: {', '.join(a.redacted)}]" if a.redacted else ""),
                    f"{max(0, int(a.expires - time.time()))}s" if a.status in ("pending", "granted") else "-",
                    clip(a.reason, 60),
                ]
                for a in items
            ],
        )
    )
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    import secrets
    import socket

    import uvicorn

    from clients.review_page import build_app

    directory = _audit_dir(args)
    token = secrets.token_urlsafe(24)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", args.port))  # this machine only, whatever the network
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise OnrecordError(
            f"cannot listen on 127.0.0.1:{args.port} ({exc.strerror}); pass another --port, or --port 0 for a free one"
        ) from exc
    port = sock.getsockname()[1]
    print(f"onrecord review of {directory}")
    print(f"  http://127.0.0.1:{port}/?token={token}")
    print("Open that URL (it holds the page's token); Ctrl-C stops the page.", flush=True)
    # No access log: each line would print a URL with the token in it.
    config = uvicorn.Config(
        build_app(directory, token, policy=args.policy), log_level="warning", access_log=False
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import anyio

    from clients.demo import run_demo

    return anyio.run(run_demo, args.keep)


def _who() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


# ----------------------------------------------------------------------------------------- parser


def parser(*, hosts: bool = True) -> argparse.ArgumentParser:
    """The command line; `hosts=False` leaves out install and doctor (their modules), which a
    server being started does not need."""
    p = argparse.ArgumentParser(
        prog="onrecord", description="MCP tool servers with every AI action on the record."
    )
    sub = p.add_subparsers(dest="command", required=True)

    def add_root(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--root", default=".", help="the project directory the server may touch (default: .)")
        sp.add_argument(
            "--policy", help="an extra policy file (between the managed file and the user's config)"
        )

    sp = sub.add_parser("serve", help="run a server for a host (stdio) or a team (http)")
    sp.add_argument("server", help="repo, or 'all' for every server's tools in one process")
    add_root(sp)
    sp.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8765)
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser("call", help="start a server over stdio, make one call, print the result")
    sp.add_argument("server")
    sp.add_argument("tool")
    sp.add_argument("json", nargs="?", help="the arguments as a JSON object")
    add_root(sp)
    sp.set_defaults(func=cmd_call)

    sp = sub.add_parser("gates", help="check the eval gates of a run (for CI): exit 1 when a gate fails")
    sp.add_argument("candidate", help="a run id, or name@<git ref> such as model@HEAD")
    sp.add_argument("--baseline", help="the run to compare against, e.g. model@main")
    sp.add_argument(
        "--fail-on-inconclusive", action="store_true", help="exit 1 on an inconclusive verdict too"
    )
    add_root(sp)
    sp.set_defaults(func=cmd_gates)

    sp = sub.add_parser(
        "readiness", help="the deploy readiness report (for CI): exit 1 when a blocker check fails"
    )
    sp.add_argument("--checks", help="comma-separated check ids (default: every check that applies)")
    sp.add_argument("--base", help="the revision the diff checks compare with")
    sp.add_argument("--fail-on-inconclusive", action="store_true", help="exit 1 when a check was skipped too")
    add_root(sp)
    sp.set_defaults(func=cmd_readiness)

    sp = sub.add_parser("audit", help="review the audit log")
    sp.add_argument("action", choices=["sessions", "show", "tail", "verify", "for-commit"])
    sp.add_argument(
        "session", nargs="?", help="for show: a session id (or a unique prefix); for for-commit: a commit"
    )
    sp.add_argument("--root", default=".", help="for for-commit: the repository (default: .)")
    sp.add_argument("--dir", help="the audit directory (default: from settings)")
    sp.add_argument("-n", type=int, default=20, help="for tail: how many records")
    sp.add_argument(
        "--only",
        choices=["denied", "asked", "errors"],
        help="for tail: only the calls that were denied, asked a human, or ended in an error (with their results)",
    )
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_audit)

    sp = sub.add_parser("policy", help="explain what the policy decides for a call")
    sp.add_argument("action", choices=["explain"])
    sp.add_argument("call", help="SERVER.TOOL, e.g. repo.read_file")
    sp.add_argument("json", nargs="?", help="the arguments as a JSON object")
    add_root(sp)
    sp.add_argument("--json", dest="as_json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_policy)

    sp = sub.add_parser("approve", help="grant (or --decline) a pending approval")
    sp.add_argument("id")
    sp.add_argument("--decline", action="store_true")
    how = sp.add_mutually_exclusive_group()
    how.add_argument("--once", action="store_true", help="one use (the default uses come from settings)")
    how.add_argument(
        "--session", action="store_true", help="any number of uses in the server session that asked"
    )
    how.add_argument("--for", dest="for_", metavar="DURATION", help="any number of uses for e.g. 10m or 2h")
    sp.add_argument("--dir", help="the audit directory for the approval record")
    sp.add_argument("--policy", help="the extra policy file the servers run with (its [approvals] counts)")
    sp.set_defaults(func=cmd_approve)

    sp = sub.add_parser("approvals", help="list pending approvals, or revoke one")
    sp.add_argument("action", nargs="?", choices=["list", "revoke"], default="list")
    sp.add_argument("id", nargs="?", help="for revoke: the approval ID")
    sp.add_argument("--all", action="store_true", help="also granted, declined, used and expired ones")
    sp.add_argument("--dir", help="the audit directory for the revoke record")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_approvals)

    sp = sub.add_parser("review", help="a local web page over the audit log, with pending approvals")
    sp.add_argument("--port", type=int, default=0, help="the port on 127.0.0.1 (default: a free one)")
    sp.add_argument("--dir", help="the audit directory (default: from settings)")
    sp.add_argument("--policy", help="the extra policy file the servers run with (its [approvals] counts)")
    sp.set_defaults(func=cmd_review)

    sp = sub.add_parser("demo", help="a scripted agent session against a sample project")
    sp.add_argument("--keep", action="store_true", help="keep the sample project and its audit log")
    sp.set_defaults(func=cmd_demo)

    if hosts:
        from clients import doctor, install

        install.add_parsers(sub)
        doctor.add_parser(sub)
    return p


class _Visible(io.TextIOBase):
    """A terminal stream on which every control character is shown, never obeyed: what the CLI
    prints comes from records, repositories and tools, and may be hostile (common.visible)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(visible(text, keep_lines=True))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        # A child process (the server `call` starts) writes to the descriptor itself.
        return self._stream.fileno()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser(hosts=argv[:1] != ["serve"]).parse_args(argv)
    out, err = sys.stdout, sys.stderr
    if args.func is not cmd_serve:  # serve's stdout is the protocol, already JSON-escaped
        sys.stdout, sys.stderr = _Visible(out), _Visible(err)
    try:
        return int(args.func(args) or 0)
    except OnrecordError as exc:
        print(f"onrecord: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (`| head`) went away: nothing more to say, and nothing to say it to.
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 0
    finally:
        sys.stdout, sys.stderr = out, err


if __name__ == "__main__":
    sys.exit(main())
