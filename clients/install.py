"""`onrecord install HOST` and `onrecord uninstall HOST`: write a host's own config, then prove it works.

After writing, each configured server is started exactly as the host will start it (same command,
arguments and `env`, over a minimal environment) and must complete the handshake and list its
tools; a server that does not is a failure, reported with what it said.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.hostfile import Change, HostFileError, apply, plan_install, plan_uninstall, read_servers
from clients.hosts import ENTRY_PREFIX, HOSTS, Host, Scope
from clients.probe import Launch, ProbeResult, probe_all
from common.errors import OnrecordError

Prober = Callable[[list[Launch]], Awaitable[list[ProbeResult]]]
# onrecord stops a call at `limits.call_timeout_s` and records it; the host's own limit is set past
# that, so a long test run ends in onrecord's words, not as a host timeout.
HOST_TIMEOUT_MARGIN_S = 60


@dataclass(frozen=True)
class Installed:
    """onrecord's entries found in one host file."""

    host: Host
    scope: Scope
    path: Path
    entries: dict[str, dict[str, Any]]
    error: str = ""


def installed_command() -> str:
    """The absolute path of the `onrecord` command running now (the one a host should start)."""
    exe = "onrecord.exe" if sys.platform == "win32" else "onrecord"
    argv0 = Path(sys.argv[0])
    if argv0.name == exe and argv0.is_file():
        return os.path.abspath(argv0)
    # Run as `python -m clients.cli`: the script installed beside this interpreter is this onrecord.
    beside = Path(sys.executable).parent / exe
    if beside.is_file():
        return str(beside)
    if found := shutil.which(exe):
        return os.path.abspath(found)
    raise OnrecordError(
        "cannot find the installed `onrecord` command (not beside this Python, not on PATH); "
        "install onrecord with pip into a virtual environment and run its `onrecord install`"
    )


def passed_env() -> dict[str, str]:
    """The variables onrecord reads that are set now; hosts start servers without them."""
    names = ("XDG_STATE_HOME", "XDG_CONFIG_HOME")
    return {k: v for k, v in sorted(os.environ.items()) if k in names or k.startswith("ONRECORD_")}


def host_timeout_s(root: Path) -> int:
    from common.config import ConfigError, load_settings
    from servers import SERVERS

    try:
        settings = load_settings(root, use_project=False, sections=SERVERS)
    except ConfigError:
        return 600 + HOST_TIMEOUT_MARGIN_S  # the settings' default; the check below reports the file
    return int(settings.call_timeout_s) + HOST_TIMEOUT_MARGIN_S


def server_names(text: str | None) -> list[str]:
    from servers import SERVERS

    if not text:
        return list(SERVERS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVERS]
    if unknown or not names:
        raise OnrecordError(
            f"--servers {text!r}: unknown server(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from: {','.join(SERVERS)}"
        )
    return list(dict.fromkeys(names))


def _scope(host: Host, project: bool) -> Scope:
    if project and host.project_file is None:
        raise OnrecordError(
            f"{host.title} has no project file; install it for your user with `onrecord install {host.name} --root DIR`"
        )
    return "project" if project else "user"


def plan(
    host: Host, names: list[str], *, scope: Scope, root: Path
) -> tuple[Change, dict[str, dict[str, Any]]]:
    """The edit that installs `names` for `host`, and the entries it writes."""
    if scope == "project":
        # A committed file: the command on each person's PATH, the project by the host's variable.
        command, root_arg, env = "onrecord", host.project_root, {}
    else:
        command, root_arg, env = installed_command(), str(root), passed_env()
    timeout = host_timeout_s(root)
    entries = {
        f"{ENTRY_PREFIX}{name}": host.entry(command, ["serve", name, "--root", root_arg], env, timeout)
        for name in names
    }
    return plan_install(host, host.path(scope, root), entries), entries


def check(
    host: Host, entries: dict[str, dict[str, Any]], project: Path | None, prober: Prober
) -> list[ProbeResult]:
    import anyio

    launches = [host.launch(name, entry, project) for name, entry in entries.items()]
    return anyio.run(prober, launches)


def report_checks(results: list[ProbeResult]) -> bool:
    for r in results:
        if r.ok:
            print(f"  ok      {r.launch.name}: {len(r.tools)} tools ({r.server})")
        else:
            print(f"  FAILED  {r.failure()}")
    return all(r.ok for r in results)


def print_diff(change: Change) -> None:
    before = (change.before or "").splitlines(keepends=True)
    after = change.after.splitlines(keepends=True)
    label = str(change.path)
    sys.stdout.writelines(
        difflib.unified_diff(
            before, after, fromfile=label if change.before is not None else "/dev/null", tofile=label
        )
    )


def run_install(args: argparse.Namespace, prober: Prober = probe_all) -> int:
    host = HOSTS[args.host]
    names = server_names(args.servers)
    scope = _scope(host, args.project)
    root = Path(args.root or ".").expanduser().resolve()
    if not root.is_dir():
        raise OnrecordError(
            f"--root {args.root!r} is not a directory; pass the project the servers may touch"
        )
    change, entries = plan(host, names, scope=scope, root=root)
    if args.dry_run:
        if change.changed:
            print(f"would write {change.path}:")
            print_diff(change)
        else:
            print(f"{change.path}: already has these entries; nothing would change")
        return 0
    if change.changed:
        backup = apply(change)
        print(f"wrote {change.path}" + (f" (previous version: {backup})" if backup else " (new file)"))
    else:
        print(f"{change.path}: already has these entries; nothing written")
    print(f"checking each server as {host.title} will start it:")
    results = check(host, entries, root if scope == "project" else None, prober)
    if not report_checks(results):
        flag = " --project" if scope == "project" else ""
        if scope == "project" and any("not on PATH" in r.error for r in results):
            print(
                "  (a project file names the `onrecord` on each person's PATH: install onrecord so that "
                "`onrecord` is on PATH, e.g. with pipx, or activate its virtual environment)"
            )
        print(
            f"onrecord: {host.title}'s config is written but a server above does not start; fix what it "
            f"says, then run `onrecord install {host.name}{flag}` again (or `onrecord uninstall {host.name}{flag}`)",
            file=sys.stderr,
        )
        return 1
    print(f"Restart {host.title} (or reload its MCP servers) to use them.")
    return 0


def run_uninstall(args: argparse.Namespace) -> int:
    host = HOSTS[args.host]
    scope = _scope(host, args.project)
    path = host.path(scope, Path.cwd())
    change, removed = plan_uninstall(host, path)
    if not removed:
        print(f"{path}: no onrecord entries; nothing to remove")
        return 0
    if args.dry_run:
        print(f"would remove {', '.join(removed)} from {path}:")
        print_diff(change)
        return 0
    backup = apply(change)
    print(f"removed {', '.join(removed)} from {path} (previous version: {backup})")
    return 0


def find_installed(project: Path) -> list[Installed]:
    """Every host file, user and this project's, that names onrecord; a file that cannot be read
    says why in `error`."""
    found: list[Installed] = []
    for host in HOSTS.values():
        scopes: list[Scope] = ["user", "project"] if host.project_file else ["user"]
        for scope in scopes:
            path = host.path(scope, project)
            if not path.is_file():
                continue
            try:
                servers = read_servers(host, path)
            except HostFileError as exc:
                found.append(Installed(host, scope, path, {}, error=str(exc)))
                continue
            ours = {
                name: entry
                for name, entry in servers.items()
                if isinstance(entry, dict) and (name.startswith(ENTRY_PREFIX) or _runs_onrecord(entry))
            }
            if ours:
                found.append(Installed(host, scope, path, ours))
    return found


def _runs_onrecord(entry: dict[str, Any]) -> bool:
    command = str(entry.get("command", ""))
    return Path(command).name in ("onrecord", "onrecord.exe")


def add_parsers(sub: Any) -> None:
    hosts = list(HOSTS)
    sp = sub.add_parser("install", help="add onrecord's servers to a host's config, then check they start")
    sp.add_argument("host", choices=hosts)
    sp.add_argument("--servers", help="comma-separated, e.g. repo,testing (default: every server)")
    where = sp.add_mutually_exclusive_group()
    where.add_argument("--root", help="the project the servers may touch, for the user's file (default: .)")
    where.add_argument(
        "--project",
        action="store_true",
        help="write the project's shared file in the current directory (the command on PATH, the "
        "project by the host's variable)",
    )
    sp.add_argument("--dry-run", action="store_true", help="print the change; write and start nothing")
    sp.set_defaults(func=run_install)

    sp = sub.add_parser("uninstall", help="remove onrecord's servers from a host's config")
    sp.add_argument("host", choices=hosts)
    sp.add_argument("--project", action="store_true", help="the project's file in the current directory")
    sp.add_argument("--dry-run", action="store_true", help="print the change; write nothing")
    sp.set_defaults(func=run_uninstall)
