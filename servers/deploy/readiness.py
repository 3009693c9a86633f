"""readiness_report and release_checklist: one go / no-go with evidence for every item.

Each check returns pass, warn, fail or skipped (with why: a missing tool, no base, no upstream is
said, never counted as a pass). Tests and lint run through the testing server's own code, secrets,
Dockerfiles and configuration through this server's tools; git facts come from the hardened git layer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import Field

from common import content, progress
from common.errors import OnrecordError
from common.git import GitError
from common.redact import redact_text
from common.workspace import WorkspaceError
from servers.deploy import configs, dockerfile, secrets
from servers.deploy.context import DeployContext, DeployError
from servers.deploy.models import (
    Check,
    Checklist,
    ChecklistItem,
    Evidence,
    Readiness,
    Severity,
    Status,
    Verdict,
    Waiver,
)
from servers.deploy.settings import CHECK_IDS, CheckId
from servers.testing.store import is_cache

MAX_EVIDENCE = 20
TEXT_CHARS = 200
BLOCKERS = frozenset({"tests", "secrets", "worktree_clean", "pushed", "dockerfile", "config"})
CHANGELOGS = (
    "CHANGELOG.md",
    "CHANGELOG.rst",
    "CHANGELOG",
    "CHANGES.md",
    "CHANGES.rst",
    "HISTORY.md",
    "NEWS.md",
)
_TODO = re.compile(r"\b(TODO|FIXME|XXX|HACK)\b")
_DEBUG = {
    ".py": re.compile(r"\bbreakpoint\(\)|\bpdb\.set_trace\(\)|^\s*import i?pdb\b|^\s*print\("),
    ".js": re.compile(r"\bconsole\.(log|debug)\(|^\s*debugger;?\s*$"),
    ".ts": re.compile(r"\bconsole\.(log|debug)\(|^\s*debugger;?\s*$"),
    ".tsx": re.compile(r"\bconsole\.(log|debug)\(|^\s*debugger;?\s*$"),
    ".jsx": re.compile(r"\bconsole\.(log|debug)\(|^\s*debugger;?\s*$"),
    ".go": re.compile(r"\bfmt\.Println\(\"debug|\bspew\.Dump\("),
    ".rb": re.compile(r"\bbinding\.pry\b|\bbyebug\b"),
}
# Bounded parts: a version or tag of thousands of digits is text, not a number to convert.
_VERSION = re.compile(r"^v?(\d{1,18}(?:\.\d{1,18})*)(.*)$")


@dataclass
class Found:
    """What one check found, before the server adds its id, title, severity and time."""

    status: Status
    summary: str
    evidence: list[Evidence] | None = None
    fix: str | None = None


def _text(line: str) -> str:
    shown = redact_text(line.strip())[0]
    return shown if len(shown) <= TEXT_CHARS else shown[: TEXT_CHARS - 1] + "…"


def _output(text: str) -> Evidence:
    """A command's output excerpt as evidence (screened: it may quote files)."""
    return Evidence(text=content.screen(_text(text[-600:])))


async def base_revision(ctx: DeployContext, base: str | None) -> tuple[str | None, str]:
    """The revision the diff checks compare against, and how it was chosen."""
    if base:
        await ctx.git.verify_rev(base, what="base")
        return base, "the base you passed"
    if ctx.options.base:
        await ctx.git.verify_rev(ctx.options.base, what="[deploy] base")
        return ctx.options.base, "[deploy] base"
    tag = await last_tag(ctx)
    if tag:
        return tag, "the last tag"
    upstream = await ctx.git.run(
        ["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}"], check=False
    )
    if upstream.returncode == 0 and upstream.text().strip():
        return upstream.text().strip(), "the upstream branch"
    return None, "no base: pass base, set [deploy] base, tag a release or set an upstream branch"


async def last_tag(ctx: DeployContext) -> str | None:
    result = await ctx.git.run(["describe", "--tags", "--abbrev=0", "HEAD"], check=False)
    return result.text().strip() or None if result.returncode == 0 else None


# ------------------------------------------------------------------------------------- the checks


async def check_tests(ctx: DeployContext, base: str | None) -> Found:
    from servers.testing.run import run_tests

    result = await run_tests(ctx.project)
    counts = result.counts
    if result.status == "passed":
        return Found("pass", f"{counts.passed} passed, {counts.skipped} skipped ({result.interpreter})")
    if result.status == "no_tests":
        return Found("skipped", "no tests were collected", fix="add tests, or disable the check in [deploy]")
    evidence = [
        Evidence(
            path=f.node_id.split("::", 1)[0],
            line=int(f.location.rsplit(":", 1)[1])
            if f.location and f.location.rsplit(":", 1)[-1].isdigit()
            else None,
            text=_text(f"{f.node_id}: {f.message}"),
        )
        for f in result.failures[:MAX_EVIDENCE]
    ]
    if result.stderr_tail and not evidence:
        evidence.append(_output(result.stderr_tail))
    return Found(
        "fail",
        f"tests {result.status}: {counts.failed} failed, {counts.errors} errors of {counts.tests} (run {result.run_id})",
        evidence,
        "run_tests for the full failures, fix them, and run the report again",
    )


async def check_lint(ctx: DeployContext, base: str | None) -> Found:
    from servers.testing.tools import lint

    result = await lint(ctx.project)
    count = sum(result.counts_by_rule.values())
    if count == 0:
        return Found("pass", f"no findings ({result.tool})")
    evidence = [
        Evidence(path=f.path, line=d.line, text=_text(f"{d.code or ''} {d.message}"))
        for f in result.files
        for d in f.diagnostics
    ][:MAX_EVIDENCE]
    rules = ", ".join(
        f"{k} ×{v}" for k, v in sorted(result.counts_by_rule.items(), key=lambda kv: -kv[1])[:5]
    )
    return Found("fail", f"{count} lint findings ({rules})", evidence, "fix_lint applies ruff's safe fixes")


async def check_worktree_clean(ctx: DeployContext, base: str | None) -> Found:
    # Without renames every entry is `XY path`; a rename's second entry (the old name) is not.
    result = await ctx.git.run(["status", "--porcelain=v1", "-z", "--no-renames", "--untracked-files=normal"])
    # Untracked bytecode and pytest's cache are what a test run (this report's own, too) leaves
    # behind, not a change: the testing server's dirty flag reads them the same way.
    entries = [e for e in result.text().split("\0") if len(e) > 3 and not (e[:2] == "??" and is_cache(e[3:]))]
    if not entries:
        return Found("pass", "no uncommitted changes and no untracked files (bytecode and test caches aside)")
    evidence = [Evidence(path=e[3:], text=f"{e[:2].strip() or '?'} {e[3:]}") for e in entries[:MAX_EVIDENCE]]
    return Found(
        "fail",
        f"{len(entries)} uncommitted or untracked path(s): what ships is not what you tested",
        evidence,
        "commit or stash the changes (or add build output to .gitignore)",
    )


async def check_pushed(ctx: DeployContext, base: str | None) -> Found:
    upstream = await ctx.git.run(
        ["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}"], check=False
    )
    name = upstream.text().strip()
    if upstream.returncode != 0 or not name:
        return Found(
            "skipped",
            "the branch has no upstream, so whether it is pushed is unknown",
            fix="git push -u origin HEAD",
        )
    ahead = await ctx.git.run(["rev-list", "--count", "@{upstream}..HEAD"])
    count = int(ahead.text().strip() or 0)
    if count == 0:
        return Found("pass", f"HEAD is on {name} (as of the last fetch)")
    log = await ctx.git.run(["log", "--oneline", "--no-decorate", "-n", "5", "@{upstream}..HEAD"])
    return Found(
        "fail",
        f"{count} commit(s) not pushed to {name}",
        [Evidence(text=_text(line)) for line in log.text().splitlines()],
        "git push",
    )


def project_version(ctx: DeployContext) -> tuple[str | None, str | None]:
    """The version the project declares, and the file it is in."""

    def read(name: str) -> str | None:
        try:
            return ctx.workspace.read_bytes(name, 1_000_000)[0].decode("utf-8", errors="replace")
        except (OSError, WorkspaceError):
            return None

    for name, keys in (
        ("pyproject.toml", (("project", "version"), ("tool", "poetry", "version"))),
        ("package.json", (("version",),)),
        ("Cargo.toml", (("package", "version"),)),
    ):
        if (text := read(name)) is None:
            continue
        docs, _ = configs.documents(text, name)
        data = docs[0][1] if docs else None
        for path in keys:
            version = _lookup(data, path)
            if isinstance(version, str):
                return version, name
    if (text := read("VERSION")) is not None and text.strip():
        return text.strip().splitlines()[0], "VERSION"
    return None, None


def _lookup(data: object, keys: tuple[str, ...]) -> object:
    """data[k1][k2]... where each step is a table; None where one is not (`project = "x"`)."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _key(version: str) -> tuple[int, ...] | None:
    m = _VERSION.match(version.strip())
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


async def check_version_bumped(ctx: DeployContext, base: str | None) -> Found:
    version, where = project_version(ctx)
    if version is None:
        return Found("skipped", "no version found in pyproject.toml, package.json, Cargo.toml or VERSION")
    tag = await last_tag(ctx)
    if tag is None:
        return Found("pass", f"{where} says {version}; there is no earlier tag to compare with")
    at = await ctx.git.run(["rev-list", "--count", f"{tag}..HEAD"])
    if int(at.text().strip() or 0) == 0:
        return Found("pass", f"HEAD is the tagged release {tag} ({where} says {version})")
    mine, theirs = _key(version), _key(tag)
    if mine is not None and theirs is not None and mine > theirs:
        return Found("pass", f"{where} says {version}, after the last tag {tag}")
    return Found(
        "fail",
        f"{where} says {version} but the last tag is {tag}: the version was not bumped since",
        [Evidence(path=where, text=f"version {version}")],
        f"raise the version in {where} above {tag}",
    )


async def check_changelog(ctx: DeployContext, base: str | None) -> Found:
    version, _ = project_version(ctx)
    for name in CHANGELOGS:
        try:
            text = ctx.workspace.read_bytes(name, 2_000_000)[0].decode("utf-8", errors="replace")
        except (OSError, WorkspaceError):
            continue
        if version is None:
            return Found("pass", f"{name} exists (no declared version to look for)")
        for number, line in enumerate(text.splitlines(), 1):
            if re.search(rf"(?<![\d.]){re.escape(version.lstrip('v'))}(?![\d])", line):
                return Found(
                    "pass",
                    f"{name} has an entry for {version}",
                    [Evidence(path=name, line=number, text=_text(line))],
                )
        return Found(
            "fail", f"{name} has no entry for {version}", fix=f"add a section for {version} to {name}"
        )
    return Found("fail", "no changelog file", fix=f"add {CHANGELOGS[0]} with an entry for this release")


async def check_dependencies_pinned(ctx: DeployContext, base: str | None) -> Found:
    root = ctx.root
    manifests = [
        m
        for m in (
            "pyproject.toml",
            "setup.py",
            "setup.cfg",
            "package.json",
            "Cargo.toml",
            "go.mod",
            "Gemfile",
        )
        if (root / m).is_file()
    ]
    requirements = sorted(p.name for p in root.glob("requirements*.txt") if p.is_file())
    if not manifests and not requirements:
        return Found("skipped", "no dependency manifest found")
    locks = [
        name
        for name in ctx.options.lock_files
        if (root / name).is_file() and not name.startswith("requirements")
    ]
    loose: list[Evidence] = []
    for name in requirements:
        try:
            text = ctx.workspace.read_bytes(name, 1_000_000)[0].decode("utf-8", errors="replace")
        except (OSError, WorkspaceError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            spec = line.split("#", 1)[0].strip()
            if spec and not spec.startswith("-") and "==" not in spec and "@" not in spec:
                loose.append(Evidence(path=name, line=number, text=_text(spec)))
    if loose:
        return Found(
            "fail",
            f"{len(loose)} requirement(s) without an exact version",
            loose[:MAX_EVIDENCE],
            "pin with == or use a lock file",
        )
    if locks or requirements:
        return Found("pass", f"pinned by {', '.join(locks or requirements)}")
    return Found(
        "fail",
        f"{', '.join(manifests)} without a lock file: a rebuild may install different versions",
        fix="commit a lock file (uv lock, poetry lock, npm install, cargo generate-lockfile)",
    )


async def _added_lines(ctx: DeployContext, base: str) -> list[tuple[str, int, str]]:
    diff = await ctx.git.run(
        ["diff", *secrets.DIFF_OPTIONS, "--end-of-options", base, "--"],
        max_output=32 * 1024 * 1024,
    )
    groups = secrets.added_lines(secrets.complete_lines(diff.text(), diff.stdout_truncated)).groups
    return [(g.path, number, text) for g in groups for number, text in g.lines]


def _is_test_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return any(p in ("tests", "test", "__tests__") for p in parts) or PurePosixPath(path).name.startswith(
        "test_"
    )


def _no_base() -> Found:
    """A check that compares with a base, when there is none (a new Found each time: the runner
    adds to its summary)."""
    return Found(
        "skipped",
        "no base to compare with",
        fix="pass base, or have a human set [deploy] base in their settings",
    )


async def check_no_debug_added(ctx: DeployContext, base: str | None) -> Found:
    if base is None:
        return _no_base()
    evidence = []
    for path, number, line in await _added_lines(ctx, base):
        suffix = PurePosixPath(path).suffix
        debug = _DEBUG.get(suffix)
        is_debug = debug is not None and not _is_test_path(path) and debug.search(line)
        if _TODO.search(line) or is_debug:
            evidence.append(Evidence(path=path, line=number, text=_text(line)))
    if not evidence:
        return Found("pass", f"no TODO, FIXME or debug statements added since {base}")
    return Found(
        "fail",
        f"{len(evidence)} TODO/FIXME or debug line(s) added since {base}",
        evidence[:MAX_EVIDENCE],
        "resolve or remove them, or track the TODOs in issues",
    )


async def check_no_large_binaries(ctx: DeployContext, base: str | None) -> Found:
    if base is None:
        return _no_base()
    limit = ctx.options.large_file_kb * 1024
    numstat = await ctx.git.run(["diff", "--numstat", "-z", "--no-renames", "--end-of-options", base, "--"])
    others = await ctx.git.run(["ls-files", "-z", "--others", "--exclude-standard"])
    names: dict[str, bool] = {}
    for entry in numstat.text().split("\0"):
        parts = entry.split("\t")
        if len(parts) == 3 and parts[2]:
            names[parts[2]] = parts[0] == "-"
    for name in others.text().split("\0"):
        if name:
            names.setdefault(name, False)
    evidence = []
    for name, binary in sorted(names.items()):
        try:
            size = (ctx.root / name).lstat().st_size
        except OSError:
            continue
        if size > limit:
            what = "binary" if binary else "file"
            evidence.append(Evidence(path=name, text=f"{what} of {size / 1024 / 1024:.1f} MiB"))
    if not evidence:
        return Found("pass", f"no file over {ctx.options.large_file_kb} KiB added or changed since {base}")
    return Found(
        "fail",
        f"{len(evidence)} file(s) over {ctx.options.large_file_kb} KiB added or changed since {base}",
        evidence[:MAX_EVIDENCE],
        "keep large files out of git (Git LFS, an artifact store), or have a human raise [deploy] large_file_kb",
    )


async def check_secrets(ctx: DeployContext, base: str | None) -> Found:
    with progress.quiet():
        scan = await secrets.scan_secrets(ctx, limit=MAX_EVIDENCE)
    total = scan.total or 0
    unread = secrets.not_scanned(scan.skipped_too_large, scan.skipped_unreadable)
    ignored = [Evidence(text=text) for text in scan.ignored_settings]
    notes = ignored + [Evidence(path=name, text="not scanned") for name in scan.not_scanned]
    counts = "".join(
        f"; {n} {what}"
        for n, what in (
            (scan.suppressed_by_baseline, "accepted in the baseline"),
            (scan.suppressed_by_allowlist, "match(es) the allowlist took out"),
            (scan.skipped_binary, "binary file(s) not scanned"),
            (len(ignored), "part(s) of the rule file or baseline ignored"),
        )
        if n
    )
    if total == 0 and unread:
        # A scan that could not read every file cannot say there is no secret.
        return Found(
            "skipped",
            f"not conclusive: {unread}; no secrets in the {scan.files_scanned} files scanned{counts}",
            notes or None,
            fix="scan_secrets names the limits; move large generated files out of the repository or "
            "have a human raise [deploy] max_file_bytes",
        )
    if total == 0:
        return Found("pass", f"no secrets in {scan.files_scanned} files{counts}", notes or None)
    evidence = [Evidence(path=f.path, line=f.line, text=f"{f.rule}: {f.excerpt}") for f in scan.findings]
    evidence += notes
    return Found(
        "fail",
        f"{total} secret(s) in the work tree{'; ' + unread if unread else ''}{counts}",
        evidence,
        "remove them and rotate them (they may be in history: scan_secrets scope='history'); "
        "accept a false positive by adding its fingerprint to .onrecord-secrets-baseline",
    )


def is_dockerfile(path: str) -> bool:
    """Dockerfile, Containerfile, Dockerfile.prod, api.Dockerfile (not dockerfile.py)."""
    name = PurePosixPath(path).name.lower()
    if name in ("dockerfile", "containerfile") or name.endswith((".dockerfile", ".containerfile")):
        return True
    stem, _, suffix = name.partition(".")
    return stem in ("dockerfile", "containerfile") and f".{suffix}" not in secrets.CODE_SUFFIXES | {
        ".md",
        ".txt",
        ".rst",
    }


async def dockerfiles(ctx: DeployContext) -> list[str]:
    return [n for n in await ctx.shipped_files() if is_dockerfile(n)][:10]


async def check_dockerfile(ctx: DeployContext, base: str | None) -> Found:
    names = await dockerfiles(ctx)
    if not names:
        return Found("skipped", "no Dockerfile in the repository")
    evidence: list[Evidence] = []
    worst: Status = "pass"
    for name in names:
        report = await dockerfile.check_dockerfile(ctx, name)
        evidence += [
            Evidence(path=f.path, line=f.line, text=f"{f.rule} ({f.severity}): {f.message}")
            for f in report.findings
        ]
        if report.verdict == "fail" or (report.verdict == "warn" and worst == "pass"):
            worst = report.verdict
    count = len(evidence)
    summary = f"{count} finding(s) in {', '.join(names)}" if count else f"{', '.join(names)}: no findings"
    return Found(
        worst, summary, evidence[:MAX_EVIDENCE], "check_dockerfile has each finding's fix" if count else None
    )


async def check_config(ctx: DeployContext, base: str | None) -> Found:
    report = await configs.check_config(ctx)
    evidence = [Evidence(path=p.path, line=p.line, text=f"{p.kind}: {p.message}") for p in report.problems]
    if report.verdict == "pass":
        return Found(
            "pass", f"{report.files_checked} configuration file(s) parse; no drift or workload problems"
        )
    return Found(
        report.verdict,
        f"{report.total} configuration problem(s)",
        evidence[:MAX_EVIDENCE],
        "check_config has each problem's fix",
    )


@dataclass(frozen=True)
class Spec:
    title: str
    run: Callable[[DeployContext, str | None], Awaitable[Found]]
    applies: Callable[[DeployContext], bool] = lambda ctx: True


def _python(ctx: DeployContext) -> bool:
    return any(
        (ctx.root / n).exists() for n in ("pyproject.toml", "setup.py", "setup.cfg", "tests", "conftest.py")
    )


CHECKS: dict[str, Spec] = {
    "tests": Spec("Tests pass", check_tests, _python),
    "lint": Spec("Lint is clean", check_lint, _python),
    "worktree_clean": Spec("Working tree is clean", check_worktree_clean),
    "pushed": Spec("Commits are pushed", check_pushed),
    "version_bumped": Spec("Version bumped since the last tag", check_version_bumped),
    "changelog": Spec("Changelog has an entry", check_changelog),
    "dependencies_pinned": Spec("Dependencies are pinned", check_dependencies_pinned),
    "no_debug_added": Spec("No TODO, FIXME or debug code added", check_no_debug_added),
    "no_large_binaries": Spec("No large files added", check_no_large_binaries),
    "secrets": Spec("No secrets in the work tree", check_secrets),
    "dockerfile": Spec(
        "Dockerfile follows good practice",
        check_dockerfile,
        lambda ctx: bool(list(ctx.root.glob("[Dd]ockerfile*"))),
    ),
    "config": Spec("Configuration parses and is complete", check_config),
}
assert set(CHECKS) == set(CHECK_IDS)
GIT_CHECKS = frozenset({"worktree_clean", "pushed", "version_bumped", "no_debug_added", "no_large_binaries"})


def verdict_of(checks: list[Check]) -> tuple[Verdict, list[str]]:
    blocking = [c.id for c in checks if c.status == "fail" and c.severity == "blocker"]
    if blocking:
        return "fail", blocking
    if any(c.status == "skipped" for c in checks):
        return "inconclusive", []
    if any(c.status in ("fail", "warn") for c in checks):
        return "warn", []
    return "pass", []


async def readiness_report(
    ctx: DeployContext,
    checks: Annotated[
        list[CheckId] | None,
        Field(
            description="Checks to run; default: every check that applies and is not disabled in [deploy]",
            max_length=len(CHECK_IDS),
        ),
    ] = None,
    base: Annotated[
        str | None,
        Field(
            description="The revision the diff checks compare with; default: [deploy] base, the last tag, or the upstream branch",
            max_length=256,
        ),
    ] = None,
) -> Readiness:
    """A go / no-go for shipping this checkout: tests pass, lint is clean, the tree is clean and
    pushed, the version is bumped with a changelog entry, dependencies are pinned, no TODO/FIXME or
    debug code and no large files were added since `base`, no secrets, the Dockerfile and the
    configuration are sound. Each check says pass, warn, fail or skipped (and why), with evidence
    (file and line, or command output) and how to fix it; the verdict is fail when a blocker check
    fails, inconclusive when one was skipped. Runs the project's tests, so it can take minutes."""
    options = ctx.options
    in_git = await ctx.in_git()
    waived: list[Waiver] = []
    if checks:
        chosen = [c for c in CHECK_IDS if c in checks]
    else:
        chosen = [c for c in CHECK_IDS if c not in options.disabled and CHECKS[c].applies(ctx)]
        waived += [
            Waiver(check=c, how="disabled", source=ctx.source("disabled"))
            for c in CHECK_IDS
            if c in options.disabled
        ]
    waived += [
        Waiver(check=c, how="advisory", source=ctx.source("advisory"))
        for c in chosen
        if c in BLOCKERS and c in options.advisory
    ]
    try:
        revision, why = await base_revision(ctx, base) if in_git else (None, "not a git repository")
    except GitError as exc:
        raise DeployError(str(exc)) from exc
    results: list[Check] = []
    for index, check_id in enumerate(chosen):
        spec = CHECKS[check_id]
        await progress.report(index, len(chosen), f"{check_id}: {spec.title}")
        progress.running(f"{check_id} ({spec.title})")
        severity: Severity = (
            "blocker" if check_id in BLOCKERS and check_id not in options.advisory else "advisory"
        )
        started = time.monotonic()
        if check_id in GIT_CHECKS and not in_git:
            found = Found("skipped", "not a git repository")
        else:
            try:
                with progress.quiet():  # a check's own progress (the tests') counts something else
                    found = await spec.run(ctx, revision)
            except OnrecordError as exc:
                found = Found("skipped", f"could not run: {content.screen(str(exc))[:300]}")
            except Exception as exc:
                # Repository files are hostile input: a crash on one is that check's result. The
                # message may quote a file, so it is screened and redacted like any output.
                reason = content.screen(_text(f"{type(exc).__name__}: {exc}"))
                found = Found("skipped", f"could not run ({reason})", fix="report this as a bug in onrecord")
        if found.status == "fail" and severity == "advisory":
            found.status = "warn"
        if found.status == "skipped" and revision is None and re.search(r"\bbase\b", found.summary):
            found.summary = f"{found.summary} ({why})"
        results.append(
            Check(
                id=check_id,
                title=spec.title,
                severity=severity,
                status=found.status,
                summary=found.summary,
                evidence=found.evidence or [],
                fix=found.fix,
                duration_s=round(time.monotonic() - started, 3),
            )
        )
    verdict, blocking = verdict_of(results)
    counts: dict[str, int] = {}
    for c in results:
        counts[c.status] = counts.get(c.status, 0) + 1
    return Readiness(
        verdict=verdict,
        blocking=blocking,
        counts=counts,
        base=revision,
        checks=results,
        waived=waived,
        total=len(results),
        returned=len(results),
        note="; ".join(f"{w.check} {w.how} by {w.source}" for w in waived) or None,
    )


# ---------------------------------------------------------------------------------- the checklist

ITEMS: dict[str, tuple[str, tuple[str, ...], str]] = {
    # id: (question, files that answer it (globs), how)
    "rollback_plan": (
        "How is this release rolled back?",
        ("ROLLBACK*", "docs/rollback*", "docs/**/rollback*", "RUNBOOK*", "docs/runbook*", "docs/**/runbook*"),
        "write the rollback steps in docs/rollback.md (or RUNBOOK.md), or link them in [deploy.checklist] rollback_plan",
    ),
    "owner": (
        "Who owns this service and answers its pages?",
        ("CODEOWNERS", ".github/CODEOWNERS", "docs/CODEOWNERS", "OWNERS", "OWNERS.md"),
        "add a CODEOWNERS file, or name the owner in [deploy.checklist] owner",
    ),
    "monitoring": (
        "Which dashboards and alerts watch it?",
        (
            "docs/monitoring*",
            "docs/**/monitoring*",
            "monitoring/*",
            "alerts/*",
            "dashboards/*",
            "**/alerts.y*ml",
            "**/prometheus*.y*ml",
        ),
        "describe the dashboards and alerts in docs/monitoring.md, or link them in [deploy.checklist] monitoring",
    ),
    "staged_rollout": (
        "How is it rolled out in stages (canary, percentage, feature flag)?",
        (
            "docs/rollout*",
            "docs/**/rollout*",
            "docs/canary*",
            "**/canary*.y*ml",
            "**/rollout*.y*ml",
            "docs/release*",
        ),
        "describe the rollout in docs/rollout.md, or link it in [deploy.checklist] staged_rollout",
    ),
}


def _answered_by(ctx: DeployContext, item: str, patterns: tuple[str, ...]) -> str | None:
    given = ctx.options.checklist.get(item)
    if given:
        if given.startswith("https://"):
            return given
        try:
            return ctx.workspace.resolve(given).relative
        except WorkspaceError:
            return None
    for pattern in patterns:
        for match in sorted(ctx.root.glob(pattern)):
            if ".git" in match.parts or not match.exists():
                continue
            relative = match.relative_to(ctx.root).as_posix()
            if content.allows(relative, follow_links=True, name=False):
                return relative
    return None


async def release_checklist(ctx: DeployContext) -> Checklist:
    """The release items no tool can check: a rollback plan, an owner, monitoring and a staged
    rollout. Each is answered by a file in the repository or a link set in [deploy.checklist], or
    listed as open with how to answer it."""
    unknown = sorted(set(ctx.options.checklist) - set(ITEMS))
    items = []
    for item, (question, patterns, how) in ITEMS.items():
        answer = _answered_by(ctx, item, patterns)
        items.append(
            ChecklistItem(
                id=item, question=question, status="answered" if answer else "open", answer=answer, how=how
            )
        )
    if unknown:
        raise DeployError(
            f"[deploy.checklist] has unknown item(s) {', '.join(unknown)}; the items are: {', '.join(ITEMS)}"
        )
    return Checklist(
        items=items, open=[i.id for i in items if i.status == "open"], total=len(items), returned=len(items)
    )
