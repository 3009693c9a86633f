"""`onrecord doctor`: is this machine ready, and what to do where it is not.

Checks, each a Finding with the fix when it is a problem: Python and git; the settings files in
trust order (managed, --policy, user, project), whether each parses, and what the project's file
tried and was refused; every server starting over stdio and listing its tools; the audit directory
writable and every chain in it verifying; and each host config that names onrecord starting what it
names, as that host would.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from clients.probe import Launch, ProbeResult, probe_all

if TYPE_CHECKING:
    from clients.install import Prober
    from common.config import Settings

Status = Literal["ok", "note", "problem"]
MIN_PYTHON = (3, 11)
MIN_GIT = (2, 24)  # --end-of-options, which every git call here passes before revisions


@dataclass(frozen=True)
class Finding:
    """One check's outcome; a problem always carries its fix."""

    check: str
    status: Status
    detail: str
    fix: str = ""


def python_finding() -> Finding:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] < MIN_PYTHON:
        return Finding(
            "python",
            "problem",
            f"Python {version} ({sys.executable}) is older than {'.'.join(map(str, MIN_PYTHON))}",
            "install onrecord into a virtual environment made with Python 3.11 or newer",
        )
    return Finding("python", "ok", f"Python {version} ({sys.executable})")


def sdk_finding() -> Finding:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return Finding("mcp", "ok", f"MCP SDK {version('mcp')}")
    except PackageNotFoundError:
        return Finding(
            "mcp", "problem", "the MCP SDK (mcp) is not installed", "pip install -e . in onrecord's venv"
        )


def git_finding() -> Finding:
    git = shutil.which("git")
    fix = "install git 2.24 or newer and make sure it is on PATH"
    if git is None:
        return Finding("git", "problem", "git is not on PATH", fix)
    try:
        out = subprocess.run([git, "--version"], capture_output=True, text=True, encoding="utf-8", timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding("git", "problem", f"{git} --version failed: {exc}", fix)
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out.stdout)
    if out.returncode != 0 or m is None:
        return Finding(
            "git", "problem", f"{git} --version said {out.stdout.strip() or out.stderr.strip()!r}", fix
        )
    found = (int(m.group(1)), int(m.group(2)))
    if found < MIN_GIT:
        return Finding("git", "problem", f"git {m.group(0)} ({git}) is older than 2.24", fix)
    return Finding("git", "ok", f"git {m.group(0)} ({git})")


def settings_findings(root: Path, policy: str | None) -> tuple[list[Finding], Settings | None]:
    """Each settings file, most trusted first, then the merged result and what a project was refused."""
    from common.config import (
        ConfigError,
        load_settings,
        managed_policy_path,
        read_project_file,
        read_settings_file,
        server_section,
        user_config_path,
    )
    from servers import SERVERS, settings_model

    files: list[tuple[str, Path | None, bool]] = [("managed", managed_policy_path(), False)]
    if policy is not None:
        files.append(("cli", Path(policy), False))
    files.append(("user", user_config_path(), False))
    # Read as the servers read it: untrusted, so what is wrong in it is refused (listed below), not a problem.
    project = read_project_file(root.resolve(), SERVERS, lambda _: None) if root.is_dir() else None
    files.append(("project", project.path if project else None, project.pyproject if project else False))

    findings: list[Finding] = []
    for scope, path, pyproject in files:
        check = f"settings ({scope})"
        if path is None:
            findings.append(Finding(check, "note", f"no project settings in {root}"))
            continue
        if scope == "project" and project is not None:
            if project.settings is None:
                findings.append(Finding(check, "note", f"{path}: ignored (the reason is listed below)"))
            else:
                findings.append(Finding(check, "ok", f"{path}: parses"))
            continue
        if not path.is_file():
            status: Status = "problem" if scope == "cli" else "note"
            findings.append(
                Finding(
                    check,
                    status,
                    f"{path}: not present",
                    "pass an existing file to --policy" if status == "problem" else "",
                )
            )
            continue
        try:
            read_settings_file(path, pyproject=pyproject, sections=SERVERS)
        except ConfigError as exc:
            findings.append(
                Finding(
                    check,
                    "problem",
                    str(exc),
                    f"edit {path} as the message says; README 'Settings and policy' lists the keys",
                )
            )
            continue
        findings.append(Finding(check, "ok", f"{path}: parses"))
    if any(f.status == "problem" for f in findings):
        return findings, None
    try:
        settings = load_settings(root, policy_file=policy, sections=SERVERS)
    except ConfigError as exc:
        findings.append(Finding("settings", "problem", str(exc), "fix the file the message names"))
        return findings, None
    for name in SERVERS:
        try:
            server_section(settings, name, settings_model(name))  # what a project's table was refused
        except ConfigError as exc:
            findings.append(Finding("settings", "problem", str(exc), "fix the file the message names"))
    for warning in settings.warnings:
        findings.append(
            Finding(
                "settings (project)",
                "problem",
                warning,
                "move the [tool.onrecord] table's settings into .onrecord.toml and delete the table",
            )
        )
    for refused in settings.refused:
        findings.append(
            Finding(
                "settings (project)",
                "note",
                f"refused: {refused}",
            )
        )
    from common.policy import rule_warnings

    for warning in rule_warnings(settings):
        findings.append(
            Finding("policy", "problem", warning, "write the rule's scheme and host in lower case")
        )
    return findings, settings


def audit_findings(directory: Path) -> list[Finding]:
    from common.audit import verify_dir

    fix_dir = "make it writable (chmod u+w), or set [audit] dir in your user config to a directory you own"
    if directory.exists():
        if not directory.is_dir():
            return [Finding("audit", "problem", f"{directory} is not a directory", fix_dir)]
        try:
            with tempfile.TemporaryFile(dir=directory):
                pass
        except OSError as exc:
            return [Finding("audit", "problem", f"{directory} is not writable ({exc.strerror})", fix_dir)]
    else:
        parent = next((p for p in directory.parents if p.exists()), None)
        if parent is None or not os.access(parent, os.W_OK | os.X_OK):
            return [
                Finding(
                    "audit", "problem", f"{directory} does not exist and {parent} is not writable", fix_dir
                )
            ]
        return [Finding("audit", "ok", f"{directory} will be created on the first call")]

    reports = verify_dir(directory)
    findings: list[Finding] = []
    for report in reports:
        errors = [p for p in report.problems if p.severity == "error"]
        if errors:
            findings.append(
                Finding(
                    "audit",
                    "problem",
                    f"{report.file}: chain broken: {errors[0]}"
                    + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""),
                    f"`onrecord audit verify --dir {directory}` lists every break; a file that fails was changed "
                    "after writing: keep it as evidence, find out who changed it, and move it out of the audit directory",
                )
            )
        for warning in (p for p in report.problems if p.severity == "warning"):
            findings.append(Finding("audit", "note", str(warning)))
    records = sum(len(r.records) for r in reports)
    if not any(f.status == "problem" for f in findings):
        findings.insert(
            0,
            Finding(
                "audit",
                "ok",
                f"{directory}: writable; {len(reports)} file(s), {records} records, every chain verifies",
            ),
        )
    return findings


def _server_launches(root: Path, policy: str | None) -> list[Launch]:
    from clients.stdio import server_params
    from servers import SERVERS

    launches = []
    for name in SERVERS:
        params = server_params(name, root, policy=policy)
        launches.append(Launch(f"server {name}", params.command, params.args, params.env or {}, root))
    return launches


def diagnose(root: Path, policy: str | None, prober: Prober = probe_all) -> list[Finding]:
    """Every check, in the order printed."""
    import anyio

    from clients.install import find_installed
    from common.config import state_dir

    findings = [python_finding(), sdk_finding(), git_finding()]
    settings_part, settings = settings_findings(root, policy)
    findings += settings_part

    launches = _server_launches(root, policy)
    hosts: list[tuple[str, str]] = []  # (check, fix) per host launch, parallel to launches after the servers
    installed = find_installed(root)
    host_findings: list[Finding] = []
    for inst in installed:
        where = f"{inst.host.name} ({inst.scope})"
        again = f"`onrecord install {inst.host.name}{' --project' if inst.scope == 'project' else ''}`"
        if inst.error:
            host_findings.append(
                Finding(f"host {where}", "problem", inst.error, "fix the file as the message says")
            )
            continue
        for name, entry in inst.entries.items():
            launches.append(inst.host.launch(name, entry, root if inst.scope == "project" else None))
            fix = (
                f"rerun {again} to rewrite the entry for this machine, or remove it with "
                f"`onrecord uninstall {inst.host.name}{' --project' if inst.scope == 'project' else ''}`"
            )
            if inst.scope == "project":
                fix = (
                    "a project file names the `onrecord` on PATH: install onrecord so that it is on PATH "
                    f"(e.g. with pipx, or activate its virtual environment); or {fix}"
                )
            hosts.append((f"host {where} {name}", fix))
    results: list[ProbeResult] = anyio.run(prober, launches)
    n_servers = len(launches) - len(hosts)
    for result in results[:n_servers]:
        findings.append(
            _probe_finding(
                result.launch.name, result, "fix what the server said above (its settings or its root)"
            )
        )
    findings += audit_findings(settings.audit_path if settings is not None else state_dir() / "audit")
    for (check, fix), result in zip(hosts, results[n_servers:], strict=True):
        findings.append(_probe_finding(check, result, fix))
    findings += host_findings
    if not installed:
        findings.append(
            Finding("hosts", "note", "no host config names onrecord; `onrecord install HOST` adds it")
        )
    return findings


def _probe_finding(check: str, result: ProbeResult, fix: str) -> Finding:
    if result.ok:
        return Finding(check, "ok", f"starts and lists {len(result.tools)} tools ({result.server})")
    return Finding(check, "problem", result.why(), fix)


def render(findings: list[Finding]) -> str:
    labels = {"ok": "ok", "note": "note", "problem": "PROBLEM"}
    lines = []
    for f in findings:
        detail = f.detail.replace("\n", "\n" + " " * 9)
        lines.append(f"{labels[f.status]:<8} {f.check}: {detail}")
        if f.fix:
            lines.append(f"{'':<8} fix: {f.fix}")
    problems = sum(f.status == "problem" for f in findings)
    lines.append(f"{problems} problem(s) found." if problems else "No problems found.")
    return "\n".join(lines)


def run_doctor(args: argparse.Namespace, prober: Prober | None = None) -> int:
    from common.errors import OnrecordError

    root = Path(args.root).expanduser().resolve()
    if not root.is_dir():
        raise OnrecordError(f"--root {args.root!r} is not a directory")
    findings = diagnose(root, args.policy, prober or probe_all)
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        print(render(findings))
    return 1 if any(f.status == "problem" for f in findings) else 0


def add_parser(sub: Any) -> None:
    sp = sub.add_parser("doctor", help="check Python, git, settings, servers, audit log and host configs")
    sp.add_argument("--root", default=".", help="the project to check settings and servers for (default: .)")
    sp.add_argument("--policy", help="the extra policy file the servers run with")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=run_doctor)
