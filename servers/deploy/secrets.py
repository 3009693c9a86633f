"""scan_secrets: the shared secret rules (common.secret_rules) over the work tree or history.

Worktree scope is what would ship from this checkout: every tracked file and every untracked file
git does not ignore, as it is on disk (so unstaged edits count), plus the staged version of each
file whose index entry differs from the disk (a secret staged and then edited away is still in the
next commit). History scope reads the lines each commit in a range added. A file git calls binary in
a diff (UTF-16, or marked so in .gitattributes) is read from the object store and decoded as a file on
disk is. git's diff output is read up to a bound: what a cut leaves out, and a binary file the diff
does not name, is counted as not scanned (never read under a made-up name, never passed). A finding
carries the rule, file, line and the line with the secret replaced by `[REDACTED:rule]`, never the
secret; its fingerprint binds a short hash of the secret, so accepting it accepts that secret on that
line and nothing else. The baseline accepts findings only in files the caller may read: elsewhere it
would confirm a guessed secret.
"""

from __future__ import annotations

import bisect
import codecs
import hashlib
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from pydantic import Field

from common import content, kinds, offload, progress
from common.budget import join_notes, take_within
from common.errors import OnrecordError
from common.git import GitError, check_ref_text
from common.redact import redact_text
from common.secret_rules import Rule, RuleSet, builtin, parse
from common.workspace import WorkspaceError
from servers.deploy.context import DeployContext, DeployError
from servers.deploy.models import SecretFinding, SecretScan

EXCERPT_CHARS = 160
CHUNK = 2000  # files scanned between progress reports
MAX_FINDINGS = 500
MAX_HITS_PER_FILE = 1000  # a file with more is generated data or an attack; its first ones say enough
# The most of git's diff output one scan reads; what a cut leaves out is counted as not scanned.
STAGED_MAX_OUTPUT = 64 * 1024 * 1024
HISTORY_MAX_OUTPUT = 128 * 1024 * 1024
# In source code a literal is quoted: `password = get_password()` names a variable, not a secret.
# Not in shell scripts, where `export TOKEN=abc123` is a literal and a reference starts with `$`
# (which the allowlist takes out).
_CODE = "py pyi js mjs cjs ts tsx jsx go rs java kt scala rb php cs c h cc cpp hpp swift m ps1 lua r jl dart ex exs erl hs ml fs vue svelte"
PROSE_SUFFIXES = frozenset({".md", ".markdown", ".rst", ".txt", ".adoc"})
CODE_SUFFIXES = frozenset(f".{s}" for s in _CODE.split(" "))


@dataclass
class Hit:
    rule: str
    line: int
    excerpt: str
    digest: bytes  # sha256 of the secret, for the fingerprint; a Hit never holds the secret


# A fingerprint is `path:rule:line:hash`, the hash the first DIGEST_HEX hex digits of a sha256 over the
# rule id and the secret(s) that rule matched on that line. Without it an accepted false positive on a
# line would accept whatever secret later took its place. 12 hex digits (48 bits): an unrelated secret
# matches an accepted entry once in 2**48, never in practice; and the fingerprint, which is shown and
# committed, does not give the secret back: a token has 100 bits of entropy or more, so about 2**52
# values or more share each digest, and a full digest would confirm an exhaustive guess (a weak value,
# a dictionary word, can be confirmed by any hash of any length, but its finding is only shown to,
# and its baseline entry only honoured for, whoever may read the file). The prefix keeps precomputed
# sha256 tables from applying. The line stays bound: a secret that moves to another line is a new
# finding, accepted again if it still is one.
DIGEST_HEX = 12
_DIGEST = re.compile(rf"[0-9a-f]{{{DIGEST_HEX}}}")
_DOMAIN = b"onrecord secret fingerprint v1\0"


def secret_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def fingerprint_of(path: str, rule: str, line: int, digests: Sequence[bytes]) -> str:
    """`path:rule:line:hash` of the secrets one rule matched on one line (by their `secret_digest`)."""
    digest = hashlib.sha256(_DOMAIN + rule.encode("utf-8", "surrogatepass") + b"\0" + b"".join(digests))
    return f"{path}:{rule}:{line}:{digest.hexdigest()[:DIGEST_HEX]}"


@dataclass
class Tally:
    findings: list[SecretFinding] = field(default_factory=list)
    files: int = 0
    binary: int = 0
    too_large: int = 0
    unreadable: int = 0
    allowlisted: int = 0
    baselined: int = 0
    capped: int = 0  # files whose findings stopped at MAX_HITS_PER_FILE
    commits: int = 0
    unscanned: list[str] = field(default_factory=list)  # the first names too large or unreadable
    unread: set[str] = field(default_factory=set)  # every file of the work tree too large or unreadable
    blobs_unread: int = 0  # binary files of the diffs past MAX_BLOBS (also counted unreadable)
    unnamed: int = 0  # binary files of the diffs whose name git's output did not give (also unreadable)
    cut: list[str] = field(default_factory=list)  # the diffs git's output was cut in: "history", "staged"

    def not_read(self, name: str | None, too_large: bool) -> None:
        """Count a file not scanned; `name` None for one whose name is unknown (counted, not named)."""
        if too_large:
            self.too_large += 1
        else:
            self.unreadable += 1
        if name is not None and len(self.unscanned) < MAX_UNSCANNED:
            self.unscanned.append(name)


def rule_set(ctx: DeployContext, ignored: list[str] | None = None) -> RuleSet:
    """The shipped rules, plus the rule file `[deploy] secret_rules` names. A file the project's own
    settings named may only add rules: its allowlist and any rule reusing a built-in id would let
    secrets through, so they are left out and said in `ignored`."""
    rules = builtin()
    extra = ctx.options.secret_rules
    if extra:
        try:
            data, _, resolved = ctx.workspace.read_bytes(extra, 1_000_000)
        except (OSError, WorkspaceError) as exc:
            raise DeployError(f"[deploy] secret_rules {extra!r} cannot be read: {exc}") from exc
        added = parse(data.decode("utf-8", errors="replace"), resolved.relative)
        if ctx.from_project("secret_rules"):
            added = _adding_only(added, rules, resolved.relative, ignored if ignored is not None else [])
            added = replace(added, untrusted=frozenset(r.id for r in added.rules))
        rules = rules.merged(added)
    return rules


def _adding_only(added: RuleSet, builtins: RuleSet, source: str, ignored: list[str]) -> RuleSet:
    """A project's rules without what would weaken the built-in ones."""
    allow = added.allowlist
    if allow.stopwords or allow.regexes or allow.paths:
        ignored.append(
            f"{source}: [allowlist] ignored: the project's settings named this file, and only the humans' "
            "settings may allowlist (accept a finding by its fingerprint in the baseline)"
        )
    taken = {r.id for r in builtins.rules}
    replacing = sorted({r.id for r in added.rules} & taken)
    if replacing:
        ignored.append(
            f"{source}: rule(s) {', '.join(replacing)} ignored: the id of a built-in rule; a project may "
            "add rules under new ids, never replace the built-in ones"
        )
    return RuleSet(tuple(r for r in added.rules if r.id not in taken))


@dataclass
class Baseline:
    """The accepted fingerprints, and the file that lists them."""

    path: str
    entries: set[str] = field(default_factory=set)

    def accepts(self, path: str, fingerprint: str) -> bool:
        """Whether the baseline takes out this finding: only in a file the caller may read. The
        fingerprint hashes the secret, and whoever can write the baseline could otherwise confirm a
        guess at a secret in a file the policy hides by whether it was suppressed; a finding there is
        withheld and counted whatever the baseline holds, so a right guess and a wrong one look alike."""
        return fingerprint in self.entries and content.allows(path, follow_links=True)


@dataclass
class Entry:
    """A baseline line's fingerprint: `path:rule:line:hash`, or the older `path:rule:line`."""

    path: str
    rule: str
    line: str
    digest: str | None


def entry(text: str) -> Entry | None:
    """The fingerprint a baseline line holds before its `#` comment, None when it holds none."""
    head, sep, last = text.split("#", 1)[0].strip().rpartition(":")
    if not sep:
        return None
    if _DIGEST.fullmatch(last.lower()):
        head, sep, number = head.rpartition(":")
        digest: str | None = last.lower()
    else:
        number, digest = last, None
    path, sep_rule, rule = head.rpartition(":")
    if not (sep and sep_rule and path and rule and _is_number(number)):
        return None
    return Entry(path, rule, number, digest)


def baseline(ctx: DeployContext, ignored: list[str] | None = None) -> Baseline:
    """Accepted findings: fingerprints `path:rule:line:hash`, one per line, `#` comments. An entry
    without the line would accept that rule's secrets anywhere in the file, and one without the hash
    (the older `path:rule:line`) any secret on that line, so they are left out and said in
    `ignored`."""
    accepted = Baseline(PurePosixPath(ctx.options.secrets_baseline).as_posix())
    try:
        data, _, _ = ctx.workspace.read_bytes(ctx.options.secrets_baseline, 1_000_000)
    except (OSError, WorkspaceError):
        return accepted
    loose: list[str] = []
    unhashed = 0
    for raw in data.decode("utf-8", errors="replace").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        found = entry(line)
        if found is None:
            loose.append(line)
        elif found.digest is None:
            unhashed += 1
        else:
            accepted.entries.add(f"{found.path}:{found.rule}:{found.line}:{found.digest}")
    # Counted, not quoted: the file is the repository's text, and may be one the policy hides.
    where = ctx.options.secrets_baseline
    if unhashed and ignored is not None:
        ignored.append(
            f"{where}: {_entries(unhashed)} path:rule:line without the secret's hash ignored: it would "
            "accept any secret on that line; re-accept each finding by the path:rule:line:hash "
            "fingerprint scan_secrets shows"
        )
    if loose and ignored is not None:
        ignored.append(
            f"{where}: {_entries(len(loose))} that are not a fingerprint ignored; accept a finding by its "
            "fingerprint, path:rule:line:hash"
        )
    return accepted


def _blank_fingerprints(text: str, rules: RuleSet) -> str:
    """The baseline file's own text with the `:rule:line:hash` of each fingerprint blanked: a rule id
    ending in `token` or `key` followed by `:12:…` reads as an assignment, and accepting that finding
    would add another. Only a known rule id, a number and a hash are blanked: the path and a comment,
    where a secret could hide, are scanned; and the lines and columns stay where they were."""
    ids = {r.id for r in rules.rules}
    lines = text.split("\n")
    for index, line in enumerate(lines):
        head = line.split("#", 1)[0]
        found = entry(head)
        if found is not None and found.rule in ids:
            offset = len(head) - len(head.lstrip())  # where the entry, and so its path, starts
            start, end = offset + len(found.path), offset + len(head.strip())
            lines[index] = line[:start] + " " * (end - start) + line[end:]
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    return text.isdecimal() and text.isascii()


def _entries(n: int) -> str:
    return f"{n} entr{'y' if n == 1 else 'ies'}"


def find(text: str, path: str, rules: RuleSet) -> tuple[list[Hit], int]:
    """The secrets in one text: (hits, matches the allowlist took out). One finding per place: the
    first rule (the most specific; the file lists them so) claims a span. At most MAX_HITS_PER_FILE."""
    lower = text.lower()
    suffix = Path(path).suffix.lower()
    code = suffix in CODE_SUFFIXES
    prose = suffix in PROSE_SUFFIXES
    # The claimed spans never overlap, so sorted by start they are sorted by end too: the only one
    # a new span can overlap is the first that ends after it starts (one bisect, not a scan).
    claimed_starts: list[int] = []
    claimed_ends: list[int] = []
    claimed_rules: list[str] = []
    allowlisted = 0
    present = {k for k in rules.keywords if k in lower}  # one substring test per keyword, not per rule
    for rule in rules.rules:
        if not rule.scan or (rule.keywords and present.isdisjoint(rule.keywords)):
            continue
        offload.checkpoint()
        for start, end in rule.secret_spans(text):  # lazy: it stops where this loop does
            after = bisect.bisect_right(claimed_ends, start)
            if after < len(claimed_starts) and claimed_starts[after] < end:
                continue
            secret = text[start:end]
            if (
                rules.allowlist.allows_secret(secret)
                or (code and _unquoted(rule, text, start))
                or (prose and _prose_word(rule, text, start, secret))
            ):
                allowlisted += 1
                continue
            claimed_starts.insert(after, start)
            claimed_ends.insert(after, end)
            claimed_rules.insert(after, rule.id)
            if len(claimed_starts) >= MAX_HITS_PER_FILE:
                break
        if len(claimed_starts) >= MAX_HITS_PER_FILE:
            break
    if not claimed_starts:
        return [], allowlisted
    lines = [0] + [m.end() for m in re.finditer("\n", text)]
    claimed = Claimed(claimed_starts, claimed_ends, claimed_rules)
    hits = []
    for start, end, rule_id in zip(claimed_starts, claimed_ends, claimed_rules, strict=True):
        index = bisect.bisect_right(lines, start) - 1
        line_end = lines[index + 1] - 1 if index + 1 < len(lines) else len(text)
        excerpt = _excerpt(text, lines[index], line_end, start, claimed)
        hits.append(Hit(rule_id, index + 1, excerpt, secret_digest(text[start:end])))
    return hits, allowlisted


@dataclass
class Claimed:
    """The secrets found in one text, sorted and not overlapping: starts, ends and rule ids."""

    starts: list[int]
    ends: list[int]
    rules: list[str]


def _prose_word(rule: Rule, text: str, start: int, secret: str) -> bool:
    """In documentation, `token: every request...` is a sentence: an unquoted keyword value that is a
    plain word (letters only) is prose, not a credential."""
    return _unquoted(rule, text, start) and secret.isalpha()


def _unquoted(rule: Rule, text: str, start: int) -> bool:
    """A keyword assignment in code whose value is not a string literal (a name, a call)."""
    return rule.id == "secret_assignment" and (start == 0 or text[start - 1] not in "\"'`")


def _excerpt(text: str, line_start: int, line_end: int, start: int, claimed: Claimed) -> str:
    """The secret's line with every secret found in it replaced, and anything else the audit
    redaction would take; around the secret when the line is long (minified code is one line)."""
    low = line_start if start - line_start <= EXCERPT_CHARS // 2 else start - EXCERPT_CHARS // 4
    high = min(line_end, max(start, low) + EXCERPT_CHARS)
    parts = ["…" if low > line_start else ""]
    at = low
    index = bisect.bisect_right(claimed.ends, low)
    while index < len(claimed.starts) and claimed.starts[index] < high:
        parts += [text[at : max(at, claimed.starts[index])], f"[REDACTED:{claimed.rules[index]}]"]
        at = min(max(at, claimed.ends[index]), high)
        index += 1
    parts.append(text[at:high])
    shown = redact_text("".join(parts))[0].strip()
    if high < line_end or len(shown) > EXCERPT_CHARS:
        shown = shown[: EXCERPT_CHARS - 1] + "…"
    return shown


# UTF-32 before UTF-16: the UTF-32-LE mark begins with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode(data: bytes) -> str | None:
    """A file's text, or None for a binary file. UTF-16 and UTF-32 (PowerShell and Windows tools
    write them) are text: by their byte-order mark, or UTF-16 without one by its NUL pattern."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    head = data[:8192]
    if b"\0" not in head:
        return data.decode("utf-8", errors="replace")
    head = head[: len(head) // 2 * 2]
    # Mostly-ASCII UTF-16: every character's high byte is NUL and no low byte is.
    for encoding, nuls, chars in (("utf-16-le", head[1::2], head[::2]), ("utf-16-be", head[::2], head[1::2])):
        if len(head) >= 4 and not nuls.strip(b"\0") and b"\0" not in chars:
            return data[: len(data) // 2 * 2].decode(encoding, errors="replace")
    return None


def _add(
    tally: Tally,
    text: str,
    path: str,
    where: str,
    rules: RuleSet,
    accepted: Baseline,
    numbers: list[int] | None = None,
) -> None:
    """Scan one text; `numbers` maps its lines to the file's (for lines taken out of a diff)."""
    if rules.untrusted and not content.allows(path, follow_links=True):
        # A rule the project wrote would tell, by matching or not, what a file it may not read holds.
        rules = rules.trusted
    if path == accepted.path:
        text = _blank_fingerprints(text, rules)
    hits, allowlisted = find(text, path, rules)
    tally.allowlisted += allowlisted
    tally.capped += len(hits) >= MAX_HITS_PER_FILE
    # One finding per rule and line, however many matches the line holds; its fingerprint hashes them
    # all, so a second secret added to an accepted line makes it a finding again.
    same: dict[tuple[str, int], list[Hit]] = {}
    for hit in hits:
        same.setdefault((hit.rule, numbers[hit.line - 1] if numbers else hit.line), []).append(hit)
    for (rule, line), group in same.items():
        fingerprint = fingerprint_of(path, rule, line, [h.digest for h in group])
        if accepted.accepts(path, fingerprint):
            tally.baselined += 1
            continue
        tally.findings.append(
            SecretFinding(
                rule=rule,
                path=path,
                line=line,
                where=where,
                excerpt=group[0].excerpt,
                fingerprint=fingerprint,
            )
        )


@dataclass
class Blobs:
    """The object ids of a file before and after a diff (all zeros for none)."""

    old: str
    new: str


@dataclass
class Added:
    """The lines a diff adds to one file (in one commit, for `git log -p`); for a file git calls
    binary, no lines but its blobs, to be read and decoded (`_scan_blobs`)."""

    commit: str
    path: str
    lines: list[tuple[int, str]]  # (line number in the new file, text)
    blobs: Blobs | None = None


COMMIT_MARK = "\x01commit "
# How every diff this server parses is asked for: no context, fixed `a/` `b/` prefixes whatever the
# repository's diff.noprefix or diff.mnemonicPrefix say, names relative to the root, and whole object
# ids on the `index` line (a file git shows as binary is read by its blob).
DIFF_OPTIONS = (
    "-U0",
    "--no-color",
    "--no-ext-diff",
    "--no-renames",
    "--no-textconv",
    "--relative",
    "--full-index",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)
_HUNK = re.compile(r"@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_INDEX = re.compile(r"index ([0-9a-f]{40,64})\.\.([0-9a-f]{40,64})(?: |$)")
_BINARY = re.compile(r"Binary files (.+) differ")
_DELETED = re.compile(r'Binary files "?a/.+ and /dev/null differ')
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
_OCTAL = re.compile(r"[0-3][0-7][0-7]")


def unquote(quoted: str) -> str | None:
    """A name as git C-quotes it (`"we\\"ird\\tname"`, `"caf\\303\\251"`), unquoted; None when
    it is not one well-formed quoted name."""
    if len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
        return None
    out = bytearray()
    i, end = 1, len(quoted) - 1
    while i < end:
        char = quoted[i]
        if char == '"':
            return None
        if char != "\\":
            out += char.encode("utf-8")
            i += 1
            continue
        escaped = quoted[i + 1 : i + 2] if i + 1 < end else ""
        if escaped in _ESCAPES:
            out.append(_ESCAPES[escaped])
            i += 2
        elif _OCTAL.fullmatch(quoted[i + 1 : min(i + 4, end)]):
            out.append(int(quoted[i + 1 : i + 4], 8))
            i += 4
        else:
            return None
    return out.decode("utf-8", errors="replace")


def new_name(header: str) -> str | None:
    """The file a `+++ ` header names (None for /dev/null or a form git does not write). Git
    C-quotes a name holding `"`, `\\` or a control character, and ends an unquoted name that holds a
    space with a TAB (which an unquoted name can never contain)."""
    raw = header[4:]
    unquoted = raw[:-1] if raw.endswith("\t") else raw
    name = unquote(raw) if raw.startswith('"') else unquoted
    if name is None or not name.startswith("b/") or len(name) == 2 or "\0" in name:
        return None
    return name[2:]


def binary_name(line: str) -> str | None:
    """The file a `Binary files A and B differ` line names after the diff, None for a deleted one.
    Without renames both sides name one file (`a/x` and `b/x`, quoted alike), so the middle of the
    line splits them, whatever ` and ` a name holds."""
    m = _BINARY.fullmatch(line)
    if m is None:
        return None
    body = m.group(1)
    half = max(0, (len(body) - len(" and ")) // 2)
    old, new = body[:half], body[len(body) - half :]
    if old.startswith(("a/", '"a/')) and old.replace("a/", "b/", 1) == new and body == f"{old} and {new}":
        return new_name("+++ " + new)
    if body.startswith("/dev/null and "):
        return new_name("+++ " + body[len("/dev/null and ") :])
    return None


@dataclass
class DiffAdds:
    """What `added_lines` read from a diff."""

    groups: list[Added]
    commits: int
    unnamed: int = 0  # binary files whose name the diff did not give in a form git writes: not read


def complete_lines(output: str, truncated: bool) -> str:
    """git's output without the line the size bound cut (all of it when nothing was cut): a
    partial line could name a file wrongly (`Binary files /dev/nu`, `+++ b/.e`)."""
    return output[: output.rfind("\n") + 1] if truncated else output


def added_lines(diff: str) -> DiffAdds:
    """What a unified diff (`git diff` or `git log -p` with DIFF_OPTIONS, the latter with
    COMMIT_MARK lines) adds, per file; and how many commits it holds.

    A hunk is read by the line counts in its `@@ -a,b +c,d @@` header, and file headers count only
    between hunks: a file's own line `++ b/README.md` is the added line `+++ b/README.md` in the diff,
    and must not rename what follows. A file git calls binary is listed with its blobs and no lines;
    one whose `Binary files` line does not name it in a form git writes is only counted (`unnamed`):
    its blob is never read, for nothing could say which file, and so which policy, its text is of."""
    found: list[Added] = []
    commit, path, commits, unnamed = "", "", 0, 0
    blobs: Blobs | None = None
    current: list[tuple[int, str]] = []

    def flush() -> None:
        if path and current:
            found.append(Added(commit, path, list(current)))
        current.clear()

    lines = diff.split("\n")
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        if raw.startswith(COMMIT_MARK):
            flush()
            commit, path, blobs = raw[len(COMMIT_MARK) :].strip(), "", None
            commits += 1
        elif raw.startswith("diff "):
            flush()
            path, blobs = "", None
        elif m := _INDEX.match(raw):
            blobs = Blobs(m.group(1), m.group(2))
        elif raw.startswith("Binary files "):
            flush()
            if blobs is None or blobs.new.strip("0"):  # not a deleted file
                name = binary_name(raw)
                if name is not None:
                    found.append(Added(commit, name, [], blobs or Blobs("", "")))
                elif blobs is not None or not _DELETED.fullmatch(raw):
                    unnamed += 1  # a form git does not write (or a cut line): not scanned, never read
            blobs = None
        elif raw.startswith("+++ "):
            flush()
            path = new_name(raw) or ""
        elif m := _HUNK.match(raw):
            offload.checkpoint()
            old = 1 if m.group(1) is None else int(m.group(1))  # `-5` is `-5,1`
            new = 1 if m.group(3) is None else int(m.group(3))
            number = int(m.group(2))
            while (old > 0 or new > 0) and i < len(lines):
                line = lines[i]
                kind = line[:1]
                if kind == "+" and new > 0:
                    if path:
                        current.append((number, line[1:]))
                    number += 1
                    new -= 1
                elif kind == "-" and old > 0:
                    old -= 1
                elif kind == " " and old > 0 and new > 0:
                    number += 1
                    old -= 1
                    new -= 1
                elif kind != "\\":
                    break  # not what the counts promised: the rest is read as headers again
                i += 1
    flush()
    return DiffAdds(found, commits, unnamed)


def _scan_added(
    tally: Tally, groups: list[Added], where: str | None, rules: RuleSet, accepted: Baseline
) -> None:
    for group in groups:
        offload.checkpoint()
        if group.lines and not rules.allowlist.allows_path(group.path):
            text = "\n".join(t for _, t in group.lines)
            numbers = [n for n, _ in group.lines]
            _add(tally, text, group.path, where or group.commit[:12], rules, accepted, numbers)


async def _worktree(ctx: DeployContext, rules: RuleSet, accepted: Baseline, tally: Tally) -> None:
    staged: list[Added] = []
    names = await ctx.shipped_files()
    if await ctx.in_git():
        # What the next commit adds beyond HEAD: one diff, not a process per file.
        cached = await ctx.git.run(["diff", "--cached", *DIFF_OPTIONS], max_output=STAGED_MAX_OUTPUT)
        diff = await offload.run(added_lines, complete_lines(cached.text(), cached.stdout_truncated))
        staged = diff.groups
        _not_named_or_cut(tally, diff, "staged" if cached.stdout_truncated else None)
    limit = ctx.options.max_file_bytes

    def scan_files(chunk: list[str]) -> None:
        for name in chunk:
            offload.checkpoint()
            if rules.allowlist.allows_path(name) or not (ctx.root / name).is_file():
                continue
            try:
                data, _, resolved = ctx.workspace.read_bytes(name, limit + 1)
            except (OSError, WorkspaceError):
                tally.not_read(name, too_large=False)
                tally.unread.add(name)
                continue
            if len(data) > limit:
                tally.not_read(name, too_large=True)
                tally.unread.add(name)
                continue
            text = decode(data)
            if text is None:
                tally.binary += 1
                continue
            tally.files += 1
            _add(tally, text, resolved.relative, "worktree", rules, accepted)

    for start in range(0, len(names), CHUNK):
        await offload.run(scan_files, names[start : start + CHUNK])
        done = min(start + CHUNK, len(names))
        await progress.report(done, len(names), f"scanned {done} of {len(names)} files")
    before = len(tally.findings)
    await offload.run(_scan_added, tally, staged, "staged", rules, accepted)
    await _scan_blobs(ctx, staged, "staged", rules, accepted, tally)
    # A staged line that is also in the file on disk is reported once, as the work tree's.
    on_disk = {(f.path, f.rule, f.excerpt) for f in tally.findings[:before]}
    tally.findings[before:] = [
        f for f in tally.findings[before:] if (f.path, f.rule, f.excerpt) not in on_disk
    ]


def _not_named_or_cut(tally: Tally, diff: DiffAdds, cut: str | None) -> None:
    """Count as not scanned the binary files a diff did not name, and, when git's output was cut at
    the size bound (`cut` names the diff), what followed the cut: the scan is then inconclusive."""
    for _ in range(diff.unnamed):
        tally.unnamed += 1
        tally.not_read(None, too_large=False)
    if cut is not None:
        tally.cut.append(cut)
        tally.not_read(None, too_large=False)


async def _history(ctx: DeployContext, range_: str, rules: RuleSet, accepted: Baseline, tally: Tally) -> None:
    """Lines added by each commit in the range."""
    if not await ctx.in_git():
        raise DeployError("scope 'history' needs a git repository; use scope 'worktree' here")
    check_ref_text(range_, "range")
    for side in re.split(r"\.\.\.?", range_):
        if side:
            await ctx.git.verify_rev(side, what="range end")
    result = await ctx.git.run(
        [
            "log",
            "-p",
            *DIFF_OPTIONS,
            f"--max-count={ctx.options.history_commits}",
            f"--format={COMMIT_MARK}%H",
            "--end-of-options",
            range_,
            "--",
        ],
        max_output=HISTORY_MAX_OUTPUT,
        timeout_s=120,
    )

    def parse_log() -> list[Added]:
        diff = added_lines(complete_lines(result.text(), result.stdout_truncated))
        tally.commits = diff.commits
        _not_named_or_cut(tally, diff, "history" if result.stdout_truncated else None)
        _scan_added(tally, diff.groups, None, rules, accepted)
        return diff.groups

    groups = await offload.run(parse_log)
    await _scan_blobs(ctx, groups, None, rules, accepted, tally)


MAX_BLOBS = 2000  # binary files of one scan's diffs read at most; the rest count as unreadable


async def _scan_blobs(
    ctx: DeployContext,
    groups: list[Added],
    where: str | None,
    rules: RuleSet,
    accepted: Baseline,
    tally: Tally,
) -> None:
    """The files a diff showed as binary, read by their blobs: one that decodes as text (UTF-16 or
    UTF-32, or text a .gitattributes marks binary) has the lines it adds scanned as a text diff's are;
    one that cannot be read is counted as not scanned, never passed. Staged (`where`), a file is
    counted binary or not scanned by the work tree scan of its file on disk, unless that read it."""
    staged = where is not None
    limit = ctx.options.max_file_bytes
    binaries = [g for g in groups if g.blobs is not None and not rules.allowlist.allows_path(g.path)]
    for index, group in enumerate(binaries):
        assert group.blobs is not None
        if index >= MAX_BLOBS:
            tally.blobs_unread += 1
            tally.not_read(group.path, too_large=False)
            continue
        try:
            data = await _read_blob(ctx, group.blobs.new, limit)
        except GitError:
            if not (staged and group.path in tally.unread):
                tally.not_read(group.path, too_large=False)
            continue
        if data is None:
            if not (staged and group.path in tally.unread):
                tally.not_read(group.path, too_large=True)
            continue
        text = decode(data)
        if text is None:
            if not staged:
                tally.binary += 1
            continue
        old_text = None
        if group.blobs.old.strip("0"):
            try:
                old = await _read_blob(ctx, group.blobs.old, limit)
            except GitError:
                old = None  # then every line counts as added
            old_text = decode(old) if old is not None else None
        lines = await offload.run(new_lines, old_text, text)
        await offload.run(
            _scan_added, tally, [Added(group.commit, group.path, lines)], where, rules, accepted
        )


async def _read_blob(ctx: DeployContext, oid: str, limit: int) -> bytes | None:
    """A blob's bytes; None when it is larger than `limit` (its size asked first: it is not read)."""
    if not re.fullmatch(r"[0-9a-f]{40,64}", oid):
        raise GitError(f"not an object id: {oid!r}")
    size = (await ctx.git.run(["cat-file", "-s", oid])).text().strip()
    if not _is_number(size):
        raise GitError(f"git cat-file -s gave no size for {oid}")
    if int(size) > limit:
        return None
    return (await ctx.git.run(["cat-file", "blob", oid], max_output=limit + 1)).stdout


def new_lines(old: str | None, new: str) -> list[tuple[int, str]]:
    """The lines of `new` that `old` does not hold as many times, numbered in `new`: what a diff
    adds, for a scan (a moved line is not new; every new text is, a duplicate of an old line too)."""
    left = Counter(old.split("\n")) if old is not None else Counter[str]()
    added: list[tuple[int, str]] = []
    for number, line in enumerate(new.split("\n"), 1):
        if left[line] > 0:
            left[line] -= 1
        else:
            added.append((number, line))
    return added


MAX_UNSCANNED = 20


def not_scanned(too_large: int, unreadable: int) -> str:
    """What a worktree scan could not read, in words ("" when it read every text file)."""
    parts = [(too_large, "larger than [deploy] max_file_bytes"), (unreadable, "unreadable")]
    said = ", ".join(f"{n} {what}" for n, what in parts if n)
    return f"{too_large + unreadable} file(s) were not scanned ({said})" if said else ""


async def gitleaks_extra(ctx: DeployContext) -> str:
    """gitleaks' own scan is optional; its absence is said, never counted as a pass."""
    if shutil.which("gitleaks") is None:
        return "skipped: gitleaks is not installed (the built-in rules ran)"
    return "skipped: gitleaks is installed, but only the built-in rules run in this version"


async def scan_secrets(
    ctx: DeployContext,
    scope: Annotated[
        Literal["worktree", "history"],
        Field(
            description="worktree: tracked, staged, unstaged and untracked (not ignored) files as they "
            "would ship; history: the lines each commit in `range` added"
        ),
    ] = "worktree",
    range: Annotated[
        str | None,
        Field(
            description="For scope history: a revision range such as 'main..HEAD' or 'v1.2.0..'; "
            "default HEAD (its whole history, up to [deploy] history_commits)",
            max_length=256,
        ),
        kinds.REV,
    ] = None,
    limit: Annotated[int, Field(description="Findings to return at most", ge=1, le=MAX_FINDINGS)] = 100,
) -> SecretScan:
    """Find secrets (API keys, tokens, private keys, passwords in config) with the rule set the
    audit log's redaction uses. Findings name the rule, file and line, and show the line with the
    secret redacted, never the secret. Accept a finding by adding its fingerprint to the baseline
    file (`.onrecord-secrets-baseline`); the result counts what the baseline and allowlist took out."""
    if scope == "worktree" and range is not None:
        raise DeployError("range applies to scope 'history' only; drop it or pass scope='history'")
    ignored: list[str] = []
    try:
        rules = rule_set(ctx, ignored)
    except OnrecordError as exc:
        raise DeployError(str(exc)) from exc
    accepted = baseline(ctx, ignored)
    tally = Tally()
    try:
        if scope == "worktree":
            await _worktree(ctx, rules, accepted, tally)
        else:
            await _history(ctx, range or "HEAD", rules, accepted, tally)
    except GitError as exc:
        raise DeployError(str(exc)) from exc
    # What may be shown is decided per file at the exit; counting the rest keeps the total honest.
    shown = [f for f in tally.findings if content.allows(f.path, follow_links=True)]
    page = take_within(shown[:limit], ctx.max_chars)
    more = len(shown) - len(page)
    return SecretScan(
        scope=scope,
        range=(range or "HEAD") if scope == "history" else None,
        findings=page,
        files_scanned=tally.files,
        commits_scanned=tally.commits,
        skipped_files=tally.binary + tally.too_large + tally.unreadable,
        skipped_binary=tally.binary,
        skipped_too_large=tally.too_large,
        skipped_unreadable=tally.unreadable,
        not_scanned=content.allowed_names(tally.unscanned),  # a file the policy hides is counted, not named
        suppressed_by_baseline=tally.baselined,
        suppressed_by_allowlist=tally.allowlisted,
        rules=sum(1 for r in rules.rules if r.scan),
        gitleaks=await gitleaks_extra(ctx),
        ignored_settings=ignored,
        total=len(tally.findings),
        returned=len(page),
        truncated=more > 0 or bool(tally.cut),
        note=join_notes(
            more > 0 and f"{more} more findings; raise limit (up to {MAX_FINDINGS}) or fix these first",
            "history" in tally.cut
            and f"git's output for this range was larger than {HISTORY_MAX_OUTPUT // 2**20} MiB: what "
            "followed was not scanned (counted as 1 unreadable); narrow the range",
            "staged" in tally.cut
            and f"git's diff of the staged changes was larger than {STAGED_MAX_OUTPUT // 2**20} MiB: "
            "the staged changes after it were not scanned (counted as 1 unreadable)",
            tally.unnamed > 0
            and f"{tally.unnamed} binary file(s) in the diffs were not named in a form git writes and "
            "were not read",
            tally.capped > 0
            and f"{tally.capped} file(s) hold more than {MAX_HITS_PER_FILE} findings; only the first "
            f"{MAX_HITS_PER_FILE} of each are counted",
            tally.too_large + tally.unreadable > 0
            and f"{not_scanned(tally.too_large, tally.unreadable)}: what they hold is unknown",
            tally.blobs_unread > 0
            and f"{tally.blobs_unread} binary file(s) past the first {MAX_BLOBS} in the diffs were not read",
            len(shown) < len(tally.findings)
            and f"{len(tally.findings) - len(shown)} findings are in files the policy does not let you read",
            bool(ignored) and "part of the rule file or baseline was ignored (see ignored_settings)",
        ),
    )
