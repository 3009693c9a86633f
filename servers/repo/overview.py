"""The first look at a repository, and the files related to one file."""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import Field

from common import content, offload
from common.budget import clamp, join_notes
from common.policy import matching
from common.pyimports import imported_files, module_index, module_name
from common.redact import redact_text
from common.workspace import WorkspaceError
from servers.repo.context import RepoContext, decode
from servers.repo.files import project_files, refuse_git_internals
from servers.repo.history import _LOG_FORMAT, _parse_log, git_status
from servers.repo.models import Entry, Overview, Related, RelatedResult
from servers.repo.params import FilePath
from servers.repo.search import grep_lines
from servers.repo.symbols import LANGUAGES

KEY_FILES = {
    "readme": ["README*", "readme*"],
    "manifests": [
        "pyproject.toml",
        "setup.py",
        "setup.cfg",
        "requirements*.txt",
        "package.json",
        "Cargo.toml",
        "go.mod",
        "pom.xml",
        "build.gradle*",
        "Gemfile",
        "composer.json",
        "*.csproj",
        "Makefile",
    ],
    "ci": [
        ".github/workflows/*",
        ".gitlab-ci.yml",
        ".circleci/config.yml",
        ".ci/*",
        "Jenkinsfile",
        "azure-pipelines.yml",
    ],
    "containers": ["Dockerfile", "*.Dockerfile", "docker-compose*.yml", "compose*.yaml", "compose*.yml"],
    "docs": ["docs/*", "CONTRIBUTING*", "CHANGELOG*", "LICENSE*"],
}
TEST_PATTERNS = [
    "test_*.py",
    "*_test.py",
    "*_test.go",
    "*.test.ts",
    "*.test.js",
    "*.spec.ts",
    "*.spec.js",
    "tests/**",
    "test/**",
]
EXTRA_LANGUAGES = {
    ".md": "markdown",
    ".toml": "toml",
    ".yml": "yaml",
    ".yaml": "yaml",
    ".json": "json",
    ".html": "html",
    ".css": "css",
    ".sql": "sql",
    ".rst": "rst",
}
MAX_TOP_LEVEL = 100
MAX_KEY_FILES = 20


async def overview(ctx: RepoContext) -> Overview:
    """A first look at the repository: branch (or detached), HEAD, uncommitted counts (as git
    status counts them), files tracked (git ls-files), languages by bytes of tracked files, top-level
    entries, key files (README, manifests, CI, Dockerfiles), test layout, last commits. `exact` says
    whether every count is exact."""
    every = await project_files(ctx)
    files = content.allowed_names(every)
    withheld = len(every) - len(files)
    has_git = ctx.has_git()
    top: dict[str, Entry] = {}
    for name in files:
        head, _, rest = name.partition("/")
        if rest:
            entry = top.setdefault(head, Entry(path=head, type="dir", files=0))
            entry.files = (entry.files or 0) + 1
        else:
            top[head] = Entry(path=head, type="file", size=_size(ctx, name))
    shallow = [f for f in files if f.count("/") <= 2]
    key_files = {
        group: matching(tuple(patterns), shallow)[:MAX_KEY_FILES] for group, patterns in KEY_FILES.items()
    }
    tests = matching(tuple(TEST_PATTERNS), files)
    test_dirs = Counter(f.split("/", 1)[0] for f in tests if "/" in f)
    test_info: dict[str, object] = {
        "test_files": len(tests),
        "directories": [d for d, _ in test_dirs.most_common(5)],
        "framework": _framework(ctx, files),
    }
    branch = head = None
    detached = False
    tracked = len(files)
    dirty = {"staged": 0, "unstaged": 0, "untracked": 0}
    commits = []
    remotes: dict[str, str] = {}
    if has_git:
        remotes = await _remotes(ctx)
        status = await git_status(ctx)
        branch, head, detached = status.branch, status.head, status.detached
        dirty = {
            "staged": status.counts["staged"],
            "unstaged": status.counts["unstaged"],
            "untracked": status.counts["untracked_files"],
        }
        listed = await ctx.git.run(["ls-files", "-z", "--cached", "--deduplicate"])
        names = {n for n in listed.text().split("\x00") if n}
        tracked = len(names)
        # Languages are what the repository holds: tracked files only, not an untracked .venv/.
        languages = await offload.run(_languages, ctx, [f for f in files if f in names])
        if head:
            out = await ctx.git.run(["log", _LOG_FORMAT, "-n5", "--no-color"])
            commits = _parse_log(out.text())
    else:
        languages = await offload.run(_languages, ctx, files)
    entries = sorted(top.values(), key=lambda e: e.path)
    return Overview(
        root=str(ctx.root),
        branch=branch,
        detached=detached,
        head=head,
        dirty=dirty,
        languages=dict(languages.most_common()),
        top_level=entries[:MAX_TOP_LEVEL],
        key_files={k: v for k, v in key_files.items() if v},
        tests=test_info,
        last_commits=commits,
        files_tracked=tracked,
        remotes=remotes,
        exact=withheld == 0,
        truncated=len(entries) > MAX_TOP_LEVEL,
        note=join_notes(
            not has_git and "not a git repository: no branch, status or history",
            withheld > 0
            and f"{withheld} file(s) the policy withholds are left out of languages, top_level and tests; "
            "files_tracked and dirty count them",
            len(entries) > MAX_TOP_LEVEL
            and f"{len(entries) - MAX_TOP_LEVEL} more top-level entries; list_files lists them",
        ),
    )


def _languages(ctx: RepoContext, files: list[str]) -> Counter[str]:
    """Bytes per language: one lstat per file, off the event loop."""
    languages: Counter[str] = Counter()
    root = str(ctx.root)
    for i, name in enumerate(files):
        if i % 2000 == 0:
            offload.checkpoint()
        dot = name.rfind(".")
        suffix = name[dot:].lower() if dot > name.rfind("/") + 1 else ""  # as PurePosixPath.suffix
        language = LANGUAGES.get(suffix) or EXTRA_LANGUAGES.get(suffix)
        if language:
            try:
                languages[language] += os.lstat(f"{root}/{name}").st_size
            except OSError:
                continue
    return languages


async def _remotes(ctx: RepoContext) -> dict[str, str]:
    """Remote URLs, with any credentials in them redacted: they are context, the secrets are not."""
    out = await ctx.git.run(["config", "--get-regexp", r"^remote\..*\.url$"], check=False)
    remotes: dict[str, str] = {}
    for line in out.text().splitlines()[:20]:
        key, _, url = line.partition(" ")
        name = key.removeprefix("remote.").removesuffix(".url")
        remotes[name] = redact_text(url)[0]
    return remotes


def _size(ctx: RepoContext, name: str) -> int | None:
    try:
        return os.lstat(ctx.root / name).st_size
    except OSError:
        return None


def _framework(ctx: RepoContext, files: list[str]) -> str | None:
    names = set(files)
    if any(f.endswith(".py") for f in names):
        if "pytest.ini" in names or "conftest.py" in names or any(f.endswith("/conftest.py") for f in names):
            return "pytest"
        try:
            data, _, _ = ctx.workspace.read_bytes("pyproject.toml", 1 << 20)
            if b"pytest" in data:
                return "pytest"
        except (WorkspaceError, OSError):
            pass
        return "unittest or pytest"
    if "package.json" in names:
        return "javascript (see package.json scripts)"
    if "go.mod" in names:
        return "go test"
    if "Cargo.toml" in names:
        return "cargo test"
    return None


# ------------------------------------------------------------------------------------- related


async def related_files(
    ctx: RepoContext,
    path: FilePath,
    limit: Annotated[int, Field(ge=1, le=100, description="Files to return")] = 10,
) -> RelatedResult:
    """Files related to one file, each with its reasons: changed together in history (recent
    commits weigh more), its tests, what it imports and what imports it."""
    resolved = ctx.workspace.resolve(path)
    refuse_git_internals(resolved.relative)
    target = resolved.relative
    limit = clamp(limit, 1, 100, 10)
    scores: dict[str, float] = defaultdict(float)
    reasons: dict[str, list[str]] = defaultdict(list)
    files = set(await project_files(ctx))

    if ctx.has_git() and await ctx.git.head():
        out = await ctx.git.run(
            ["log", "--format=%x1e%H", "--name-only", "-n500", "--no-color", "--no-renames"]
        )
        together: Counter[str] = Counter()
        weight: dict[str, float] = defaultdict(float)
        for rank, block in enumerate(b for b in out.text().split("\x1e") if b.strip()):
            changed = [line for line in block.splitlines()[1:] if line.strip()]
            if target not in changed or len(changed) > 50:  # huge commits say little about coupling
                continue
            recency = math.exp(-rank / 100)
            for other in changed:
                if other != target and other in files:
                    together[other] += 1
                    weight[other] += recency
        for other, count in together.items():
            scores[other] += weight[other]
            reasons[other].append(f"changed together in {count} commit(s)")

    stem = PurePosixPath(target).stem
    for other in files:
        name = PurePosixPath(other).name
        if other != target and name in {
            f"test_{stem}.py",
            f"{stem}_test.py",
            f"{stem}_test.go",
            f"{stem}.test.ts",
            f"{stem}.test.js",
            f"{stem}.spec.ts",
        }:
            scores[other] += 3.0
            reasons[other].append("its test file (by name)")

    if target.endswith(".py"):
        module = module_name(target)
        modules = module_index(files)
        for imported in _python_imports(ctx, target, modules):
            scores[imported] += 1.5
            reasons[imported].append("imported by it")
        if module:
            hits, _ = await grep_lines(
                ctx, module.rsplit(".", 1)[-1], regex=False, case_sensitive=True, word=True
            )
            candidates = sorted({p for p, _, _ in hits if p.endswith(".py") and p != target})
            for other in await offload.run(_importers, ctx, target, candidates, modules):
                scores[other] += 2.0 if "test" in other else 1.5
                reasons[other].append("imports it" + (" (a test)" if "test" in other else ""))
    ranked = sorted(
        (
            Related(path=p, score=round(s, 3), reasons=reasons[p])
            for p, s in scores.items()
            if content.allows(p, name=False)
        ),
        key=lambda r: (-r.score, r.path),
    )
    return RelatedResult(
        path=target,
        related=ranked[:limit],
        total=len(ranked),
        returned=min(limit, len(ranked)),
        truncated=len(ranked) > limit,
        note=f"{len(ranked) - limit} more; raise limit (max 100)" if len(ranked) > limit else None,
    )


def _importers(ctx: RepoContext, target: str, candidates: list[str], modules: dict[str, str]) -> list[str]:
    """The candidates that import `target` (each parsed, off the event loop)."""
    found = []
    for other in candidates:
        offload.checkpoint()
        if target in _python_imports(ctx, other, modules):
            found.append(other)
    return found


def _python_imports(ctx: RepoContext, path: str, modules: dict[str, str]) -> set[str]:
    """Files in the repository that `path` imports."""
    try:
        data, _, _ = ctx.workspace.read_bytes(path, 2 * 1024 * 1024)
    except (WorkspaceError, OSError):
        return set()
    return imported_files(path, decode(data)[0], modules)
