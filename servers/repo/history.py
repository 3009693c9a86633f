"""Git history tools: status, diff, log, show, blame."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated

from pydantic import Field

from common import content, kinds
from common.budget import clamp, cursor_position, encode_cursor, join_notes, take_within
from common.git import GitError, check_date
from servers.repo.context import RepoContext, decode, visible
from servers.repo.files import MAX_LINE, check_range, read_file, refuse_git_internals
from servers.repo.models import (
    BlameCommit,
    BlameRange,
    BlameResult,
    Commit,
    DiffResult,
    FileStat,
    FileStatus,
    Hunk,
    LogResult,
    ShowResult,
    StatusResult,
)
from servers.repo.params import Cursor, FilePath, OptionalPath, Rev

MAX_STATUS_ENTRIES = 500
MAX_LOG = 100
MAX_FILES_PER_COMMIT = 50
MAX_CONTEXT = 50
MAX_BLAME_LINES = 3000
DIFF_FLAGS = ["--no-color", "--no-ext-diff", "--no-textconv"]
_RS, _US = "\x1e", "\x1f"
_LOG_FORMAT = f"--format={_RS}%H{_US}%an{_US}%ae{_US}%aI{_US}%s"


_STATUS: dict[str, FileStatus] = {
    "A": "added",
    "M": "modified",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "T": "type_changed",
    "U": "unmerged",
}


def _stat(status: str, path: str, old: str | None, counts: tuple[str, str] | None) -> FileStat:
    added, deleted = counts if counts is not None else ("-", "-")
    return FileStat(
        path=path,
        old_path=old,
        status=_STATUS.get(status[:1], "modified"),
        added=None if added == "-" else int(added),
        deleted=None if deleted == "-" else int(deleted),
    )


def _parse_numstat_z(text: str) -> list[FileStat]:
    """`--raw --numstat -z` output: raw records (':modes shas STATUS\0path\0', or with old and new
    paths for renames and copies), then numstat records in the same order ('a\td\tpath\0', or
    'a\td\t\0old\0new\0')."""
    raw: list[tuple[str, str, str | None]] = []
    counts: list[tuple[str, str]] = []
    parts = text.split("\x00")
    i = 0
    while i < len(parts):
        item = parts[i].strip("\n")
        i += 1
        if not item:
            continue
        if item.startswith(":"):
            status = item.split(" ")[-1]
            if status[:1] in "RC" and i + 1 < len(parts):
                raw.append((status, parts[i + 1], parts[i]))
                i += 2
            elif i < len(parts):
                raw.append((status, parts[i], None))
                i += 1
            continue
        fields = item.split("\t")
        if len(fields) < 3:
            continue
        counts.append((fields[0], fields[1]))
        if fields[2] == "":
            i += 2  # a rename's old and new paths, already known from its raw record
    return [_stat(s, p, o, counts[n] if n < len(counts) else None) for n, (s, p, o) in enumerate(raw)]


async def _numstat(ctx: RepoContext, args: list[str]) -> list[FileStat]:
    out = await ctx.git.run(["diff", "--raw", "--numstat", "-z", *DIFF_FLAGS, *args])
    return _parse_numstat_z(out.text())


async def git_status(ctx: RepoContext) -> StatusResult:
    """Staged, unstaged and untracked files with added/deleted line counts, plus branch and upstream."""
    # Untracked folders are collapsed as `git status` shows them (`.venv/`), with their file counts.
    out = await ctx.git.run(["status", "--porcelain=v2", "-z", "--branch", "--untracked-files=normal"])
    branch = head = upstream = None
    detached = False
    ahead = behind = None
    staged_paths: set[str] = set()
    unstaged_paths: set[str] = set()
    untracked: list[str] = []
    conflicted: list[str] = []
    records = out.text().split("\x00")
    # Status names paths from the top of the work tree; a root inside it sees them from inside.
    inside = f"{ctx.git.prefix}/" if ctx.git.prefix else ""
    i = 0
    while i < len(records):
        rec = records[i]
        i += 1
        if rec.startswith("# branch.oid "):
            oid = rec.split()[-1]
            head = None if oid == "(initial)" else oid
        elif rec.startswith("# branch.head "):
            name = rec.split(" ", 2)[2]
            detached = name == "(detached)"
            branch = None if detached else name
        elif rec.startswith("# branch.upstream "):
            upstream = rec.split(" ", 2)[2]
        elif rec.startswith("# branch.ab "):
            a, b = rec.split()[2:4]
            ahead, behind = int(a), -int(b)
        elif rec.startswith(("1 ", "2 ")):
            fields = rec.split(" ", 8 if rec[0] == "1" else 9)
            xy, path = fields[1], fields[-1].removeprefix(inside)
            if rec[0] == "2":
                i += 1  # the original path of a rename follows
            if xy[0] != ".":
                staged_paths.add(path)
            if xy[1] != ".":
                unstaged_paths.add(path)
        elif rec.startswith("u "):
            conflicted.append(rec.split(" ", 10)[-1].removeprefix(inside))
        elif rec.startswith("? "):
            untracked.append(rec[2:].removeprefix(inside))
    staged = await _numstat(ctx, ["--cached"]) if staged_paths else []
    unstaged = await _numstat(ctx, []) if unstaged_paths else []
    staged += [FileStat(path=p, status="modified") for p in staged_paths - {s.path for s in staged}]
    unstaged += [FileStat(path=p, status="modified") for p in unstaged_paths - {s.path for s in unstaged}]
    folders = await _untracked_counts(ctx, [u for u in untracked if u.endswith("/")])
    counts = {
        "staged": len(staged),
        "unstaged": len(unstaged),
        "untracked_files": len(untracked) - len(folders) + sum(folders.values()),
        "conflicted": len(conflicted),
    }
    total = len(staged) + len(unstaged) + len(untracked) + len(conflicted)
    cut = any(len(x) > MAX_STATUS_ENTRIES for x in (staged, unstaged, untracked))
    return StatusResult(
        branch=branch,
        detached=detached,
        head=head,
        counts=counts,
        untracked_folders=folders,
        upstream=upstream,
        ahead=ahead,
        behind=behind,
        staged=sorted(staged, key=lambda s: s.path)[:MAX_STATUS_ENTRIES],
        unstaged=sorted(unstaged, key=lambda s: s.path)[:MAX_STATUS_ENTRIES],
        untracked=sorted(untracked)[:MAX_STATUS_ENTRIES],
        conflicted=sorted(conflicted),
        total=total,
        returned=sum(min(len(x), MAX_STATUS_ENTRIES) for x in (staged, unstaged, untracked))
        + len(conflicted),
        truncated=cut,
        note=f"each list is cut at {MAX_STATUS_ENTRIES} entries; use list_files or git_diff with path"
        if cut
        else None,
    )


async def _untracked_counts(ctx: RepoContext, folders: list[str]) -> dict[str, int]:
    """How many untracked, not ignored files each collapsed folder holds."""
    if not folders:
        return {}
    listed = await ctx.git.run(["ls-files", "-z", "--others", "--exclude-standard", "--", *folders])
    counts = dict.fromkeys(folders, 0)
    for name in listed.text().split("\x00"):
        for folder in folders:
            if name.startswith(folder):
                counts[folder] += 1
                break
    return counts


def _parse_log(text: str) -> list[Commit]:
    commits: list[Commit] = []
    for block in text.split(_RS):
        if not block.strip():
            continue
        header, _, rest = block.partition("\n")
        fields = header.split(_US)
        if len(fields) < 5:
            continue
        commit = Commit(
            sha=fields[0], author=fields[1], email=fields[2], date=fields[3], subject=visible(fields[4])
        )
        raw: list[tuple[str, str, str | None]] = []
        counts: list[tuple[str, str]] = []
        for line in rest.splitlines():
            if line.startswith(":"):
                fields = line.split("\t")
                status = fields[0].split(" ")[-1]
                if status[:1] in "RC" and len(fields) >= 3:
                    raw.append((status, fields[2], fields[1]))
                elif len(fields) >= 2:
                    raw.append((status, fields[1], None))
                continue
            parts = line.split("\t", 2)
            if len(parts) == 3:
                counts.append((parts[0], parts[1]))
        for n, (status, path, old) in enumerate(raw):
            if len(commit.files) >= MAX_FILES_PER_COMMIT:
                commit.files_omitted += 1
                continue
            commit.files.append(_stat(status, path, old, counts[n] if n < len(counts) else None))
        commits.append(commit)
    return commits


async def git_log(
    ctx: RepoContext,
    path: Annotated[str | None, Field(description="Only commits touching this path"), kinds.PATH] = None,
    rev: Rev = None,
    author: Annotated[str | None, Field(description="Author name or email contains this text")] = None,
    since: Annotated[str | None, Field(description="Date, e.g. '2026-01-31' or '2 weeks ago'")] = None,
    until: Annotated[str | None, Field(description="Date, e.g. '2026-03-01'")] = None,
    grep: Annotated[str | None, Field(description="Commit message contains this text")] = None,
    limit: Annotated[int, Field(ge=1, le=MAX_LOG, description="Commits per page")] = 20,
    cursor: Cursor = None,
) -> LogResult:
    """Commit history: sha, author, date, subject, and files changed with line counts."""
    _ = ctx.git.git_dir  # refuse a repository outside the root before anything else
    limit = clamp(limit, 1, MAX_LOG, 20)
    key = {"path": path, "rev": rev, "author": author, "since": since, "until": until, "grep": grep}
    skip = cursor_position(cursor, "git_log", key)
    args = ["log", _LOG_FORMAT, "--raw", "--numstat", "--no-color", "--no-ext-diff", "--no-textconv"]
    args += ["--regexp-ignore-case", "--fixed-strings"]
    if author is not None:
        args.append(f"--author={_literal(author, 'author')}")
    if grep is not None:
        args.append(f"--grep={_literal(grep, 'grep')}")
    if since is not None:
        args.append(f"--since={check_date(since, 'since')}")
    if until is not None:
        args.append(f"--until={check_date(until, 'until')}")
    args += [f"--skip={skip}", f"-n{limit + 1}"]
    args += ["--end-of-options", await ctx.git.verify_rev(rev) if rev else "HEAD"]
    if path is not None:
        relative = ctx.repo_path(path)
        refuse_git_internals(relative)
        args += ["--", relative]
    if rev is None and await ctx.git.head() is None:
        return LogResult(commits=[], total=0, returned=0, note="the repository has no commits yet")
    out = await ctx.git.run(args)
    commits = _parse_log(out.text())
    more = len(commits) > limit
    commits = commits[:limit]
    budgeted, dropped = _fit(ctx, commits)
    more = more or dropped > 0
    nxt = skip + len(budgeted)
    return LogResult(
        commits=budgeted,
        returned=len(budgeted),
        truncated=more,
        next_cursor=encode_cursor("git_log", o=nxt, **key) if more else None,
        note="more commits; pass next_cursor to continue" if more else None,
    )


def _literal(value: str, what: str) -> str:
    if any(ord(c) < 32 for c in value) or len(value) > 256:
        raise GitError(f"{what} {value!r} contains control characters or is longer than 256 characters")
    return value


def _fit(ctx: RepoContext, commits: list[Commit]) -> tuple[list[Commit], int]:
    used = 0
    out: list[Commit] = []
    for c in commits:
        size = len(c.model_dump_json())
        if used + size > ctx.max_chars and out:
            return out, len(commits) - len(out)
        used += size
        out.append(c)
    return out, 0


# ----------------------------------------------------------------------------------------- diffs

_DIFF_HEADER = re.compile(r"^diff --git a/(.*) b/(.*)$")
_OLD_PATH = re.compile(r"^(?:rename|copy) from (.*)$", re.MULTILINE)


def _split_patch(text: str) -> list[tuple[str, str, list[str]]]:
    """A patch as (path, file header, [hunks])."""
    files: list[tuple[str, str, list[str]]] = []
    current: tuple[str, list[str], list[list[str]]] | None = None
    for line in text.split("\n"):
        m = _DIFF_HEADER.match(line)
        if m:
            if current:
                files.append((current[0], "\n".join(current[1]), ["\n".join(h) for h in current[2]]))
            current = (m.group(2), [line], [])
            continue
        if current is None:
            continue
        hunks = current[2]
        if line.startswith("@@"):
            hunks.append([line])
        elif hunks:
            hunks[-1].append(line)
        else:
            current[1].append(line)
    if current:
        files.append((current[0], "\n".join(current[1]), ["\n".join(h) for h in current[2]]))
    return files


MAX_LEFT_OUT = 200


@dataclass
class _Budgeted:
    stats: list[FileStat]
    hunks: list[Hunk]
    left_out: list[str]
    next_hunk: int | None
    stats_cut: bool


def _budget_diff(
    ctx: RepoContext, all_stats: list[FileStat], patch: bytes, start: int, used: int
) -> _Budgeted:
    """Per-file stats first (at most a third of the budget), then whole hunks from `start`."""
    stats = take_within(all_stats, ctx.max_chars // 3)
    used += sum(len(s.model_dump_json()) + 1 for s in stats)
    hunks, left_out, nxt = _budget_hunks(ctx, decode(patch)[0], start, used)
    return _Budgeted(stats, hunks, left_out[:MAX_LEFT_OUT], nxt, len(stats) < len(all_stats))


def _budget_hunks(
    ctx: RepoContext, patch: str, start: int, used: int
) -> tuple[list[Hunk], list[str], int | None]:
    """Whole hunks from index `start` within budget; files left out; next index or None."""
    hunks: list[Hunk] = []
    left_out: list[str] = []
    index = 0
    next_index: int | None = None
    for path, header, file_hunks in _split_patch(patch):
        renamed = _OLD_PATH.search(header)
        old_path = renamed.group(1) if renamed else None
        if not content.allows(path) or (old_path is not None and not content.allows(old_path)):
            continue  # left out before budgeting, so pages and cursors count only what may be shown
        if not file_hunks:
            file_hunks = [header.split("\n", 1)[-1] or "(no textual change: mode, rename or binary)"]
        for hunk in file_hunks:
            if index < start:
                index += 1
                continue
            text = visible(hunk)
            if next_index is None and (used + len(text) + len(path) + 40 <= ctx.max_chars or not hunks):
                if len(text) > ctx.max_chars // 2:
                    text = text[: ctx.max_chars // 2] + "\n… [hunk cut to stay in budget]"
                hunks.append(Hunk(path=path, old_path=old_path, header=text.split("\n", 1)[0], text=text))
                used += len(text) + len(path) + 40
            else:
                if next_index is None:
                    next_index = index
                if path not in left_out:
                    left_out.append(path)
            index += 1
    return hunks, left_out, next_index


async def git_diff(
    ctx: RepoContext,
    base: Rev = None,
    target: Annotated[
        str | None, Field(description="Revision to compare base with; default: the working tree"), kinds.REV
    ] = None,
    staged: Annotated[bool, Field(description="Compare the index (staged changes) with HEAD")] = False,
    path: OptionalPath = None,
    context_lines: Annotated[int, Field(ge=0, le=MAX_CONTEXT, description="Context lines per hunk")] = 3,
    cursor: Cursor = None,
) -> DiffResult:
    """A diff summarised for reading: per-file stats first, then whole hunks within the budget,
    then the files left out and how to get them. With no arguments: unstaged changes."""
    context_lines = clamp(context_lines, 0, MAX_CONTEXT, 3)
    key = {"base": base, "target": target, "staged": staged, "path": path, "u": context_lines}
    start = cursor_position(cursor, "git_diff", key, "h")
    revs: list[str] = []
    if target is not None and base is None:
        base = "HEAD"
    if base is not None:
        revs.append(await ctx.git.verify_rev(base, what="base"))
    if target is not None:
        if staged:
            raise GitError("staged=True compares the index with HEAD; it cannot be combined with target")
        revs.append(await ctx.git.verify_rev(target, what="target"))
    spec = (["--cached"] if staged else []) + ["--end-of-options", *revs]
    tail: list[str] = []
    if path is not None:
        relative = ctx.repo_path(path)
        refuse_git_internals(relative)
        tail = ["--", relative]
    all_stats = await _numstat(ctx, [*spec, *tail])
    patch = await ctx.git.run(["diff", *DIFF_FLAGS, f"-U{context_lines}", *spec, *tail])
    b = _budget_diff(ctx, all_stats, patch.stdout, start, 0)
    more = b.next_hunk is not None
    return DiffResult(
        base=base,
        target=target,
        files=b.stats,
        hunks=b.hunks,
        files_left_out=b.left_out,
        total=len(all_stats),
        returned=len(b.hunks),
        truncated=more or b.stats_cut or patch.stdout_truncated,
        next_cursor=encode_cursor("git_diff", h=b.next_hunk, **key) if more else None,
        note=join_notes(
            more
            and f"hunks of {len(b.left_out)}+ file(s) left out to stay in budget: pass next_cursor, or call "
            "git_diff with path=<file> for one file",
            b.stats_cut
            and f"stats of {len(all_stats) - len(b.stats)} more file(s) left out; narrow with path",
        ),
    )


async def git_show(
    ctx: RepoContext,
    rev: Annotated[str, Field(description="The commit to show"), kinds.REV] = "HEAD",
    path: Annotated[
        str | None, Field(description="Show this file as it was at rev instead"), kinds.PATH
    ] = None,
) -> ShowResult:
    """A commit: header, message, per-file stats and a budgeted diff; or a file at rev when path is given."""
    sha = await ctx.git.verify_rev(rev)
    if path is not None:
        content = await read_file(ctx, path, ref=sha)
        return ShowResult(sha=sha, file=content, truncated=content.truncated, note=content.note)
    head = await ctx.git.run(
        ["show", "-s", "--no-color", f"--format=%P{_US}%an{_US}%ae{_US}%aI{_US}%B", "--end-of-options", sha]
    )
    parents, author, email, date, message = (head.text().split(_US, 4) + [""] * 5)[:5]
    parent_list = parents.split()
    if parent_list:
        spec = ["--end-of-options", parent_list[0], sha]
        all_stats = await _numstat(ctx, spec)
        patch = await ctx.git.run(["diff", *DIFF_FLAGS, "-U3", *spec])
    else:
        all_stats = _parse_numstat_z(
            (
                await ctx.git.run(
                    ["diff-tree", "-r", "--root", "--raw", "--numstat", "-z", "--no-commit-id", sha]
                )
            ).text()
        )
        patch = await ctx.git.run(["diff-tree", "-r", "-p", "--root", "--no-commit-id", *DIFF_FLAGS, sha])
    message = visible(message.strip())
    if len(message) > 4000:
        message = message[:4000] + "… [message cut]"
    b = _budget_diff(ctx, all_stats, patch.stdout, 0, len(message))
    return ShowResult(
        sha=sha,
        author=author,
        email=email,
        date=date,
        message=message,
        parents=parent_list,
        files=b.stats,
        hunks=b.hunks,
        files_left_out=b.left_out,
        total=len(all_stats),
        returned=len(b.hunks),
        truncated=b.next_hunk is not None or b.stats_cut,
        note=join_notes(
            b.next_hunk is not None
            and f"hunks of {len(b.left_out)}+ file(s) left out; call git_diff with base={sha[:12]}^ "
            f"target={sha[:12]} and path=<file> to read them",
            b.stats_cut and f"stats of {len(all_stats) - len(b.stats)} more file(s) left out",
        ),
    )


async def git_blame(
    ctx: RepoContext,
    path: FilePath,
    start_line: Annotated[int, Field(ge=1, le=MAX_LINE, description="First line (1-based)")] = 1,
    end_line: Annotated[int | None, Field(ge=1, le=MAX_LINE, description="Last line")] = None,
    rev: Rev = None,
) -> BlameResult:
    """Who last changed each line: ranges of lines with a commit id; each commit's author, date and
    summary are given once in `commits`."""
    check_range(start_line, end_line)
    relative = ctx.repo_path(path)
    refuse_git_internals(relative)
    if rev is None:
        ctx.workspace.resolve(relative)  # confinement and symlink checks for the working-tree file
    start = max(1, start_line)
    last = (
        start + MAX_BLAME_LINES - 1
        if end_line is None
        else min(max(start, end_line), start + MAX_BLAME_LINES - 1)
    )
    args = ["blame", "--porcelain", "--no-textconv", f"-L{start},{last}"]
    if rev is not None:
        # blame does not take --end-of-options; a verified object id is hex and cannot be an option.
        args.append(await ctx.git.verify_rev(rev))
    args += ["--", relative]
    out = await ctx.git.run(args, check=False)
    if out.returncode != 0:
        err = out.text("stderr").strip()
        if "has only" in err:
            # -L past the end: clamp to the real length and retry once.
            found = re.search(r"has only (\d+) line", err)
            total = int(found.group(1)) if found else 0
            if total and start <= total:
                return await git_blame(ctx, path, start, total, rev)
            raise GitError(f"start_line {start} is past the end of {relative!r} ({total} lines)")
        if "no such path" in err:
            where = f"at {rev!r}" if rev is not None else "in HEAD"
            raise GitError(
                f"path {relative!r} has no history {where} (it is untracked, ignored or new): blame "
                "needs a committed file; use read_file to read it"
            )
        # git's own text stays here: it names internals the agent cannot act on.
        raise GitError(
            f"git blame could not run for {relative!r} (exit {out.returncode}); check the path and rev"
        )
    commits: dict[str, BlameCommit] = {}
    ranges: list[BlameRange] = []
    meta: dict[str, dict[str, str]] = {}
    current_sha = ""
    current_line = 0
    used = 0
    stopped_at: int | None = None
    for line in out.text().split("\n"):
        if line.startswith("\t"):
            text = visible(line[1:])[:500]
            if used + len(text) > ctx.max_chars:
                stopped_at = current_line
                break
            used += len(text) + 8
            if ranges and ranges[-1].sha == current_sha and ranges[-1].end_line == current_line - 1:
                ranges[-1].end_line = current_line
                ranges[-1].lines.append(text)
            else:
                ranges.append(
                    BlameRange(start_line=current_line, end_line=current_line, sha=current_sha, lines=[text])
                )
            continue
        parts = line.split(" ")
        if len(parts) >= 3 and re.fullmatch(r"[0-9a-f]{40,64}", parts[0]):
            current_sha = parts[0]
            current_line = int(parts[2])
            meta.setdefault(current_sha, {})
        elif current_sha and " " in line:
            k, v = line.split(" ", 1)
            meta[current_sha].setdefault(k, v)
    for sha in {r.sha for r in ranges}:
        m = meta.get(sha, {})
        commits[sha] = BlameCommit(
            sha=sha,
            author=m.get("author", ""),
            date=_epoch_iso(m.get("author-time"), m.get("author-tz")),
            summary=visible(m.get("summary", "")),
        )
    shown_last = ranges[-1].end_line if ranges else start - 1
    # More lines may follow only if the budget stopped us or the window came back full.
    more = stopped_at is not None or (shown_last >= last and (end_line is None or end_line > last))
    return BlameResult(
        path=relative,
        rev=rev,
        commits=commits,
        ranges=ranges,
        returned=shown_last - start + 1,
        truncated=more,
        next_start_line=shown_last + 1 if more else None,
        note=f"stopped at line {shown_last} to stay in budget; pass start_line={shown_last + 1}"
        if more
        else None,
    )


def _epoch_iso(epoch: str | None, tz: str | None) -> str:
    if not epoch:
        return ""
    offset = UTC
    if tz and re.fullmatch(r"[+-]\d{4}", tz):
        sign = 1 if tz[0] == "+" else -1
        offset = timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[3:5])))
    return datetime.fromtimestamp(int(epoch), UTC).astimezone(offset).isoformat()
