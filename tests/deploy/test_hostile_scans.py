"""scan_secrets and check_dockerfile on hostile input: rule files built to burn CPU or crash the
scan, files the scan cannot read, and Dockerfiles that put a secret where a name goes."""

from __future__ import annotations

import codecs
import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from common.secret_rules import MAX_RULES, Rule, RuleError, RuleSet, builtin, parse
from servers.deploy import secrets
from servers.deploy.secrets import (
    COMMIT_MARK,
    DIFF_OPTIONS,
    MAX_HITS_PER_FILE,
    added_lines,
    binary_name,
    complete_lines,
    decode,
    find,
)
from tests.helpers import commit, err, git, ok, write

# Assembled at run time so this file itself holds no secret-shaped literal.
AWS = "AKIA" + "Q7XM2LB5ZP4KD9WF"
GH = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"

pytestmark = pytest.mark.anyio


# ---------------------------------------------------------------------------- project rule files


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        ('regex = "x*"', "matches the empty string"),
        ('regex = "(?:tok)?"', "matches the empty string"),
        ('regex = "\\\\b"', "matches the empty string"),
        ('regex = "(?m)^"', "matches the empty string"),
        ('regex = "ab(c)"\nsecretGroup = 99', "`secretGroup` must be a group number from 0 to 1"),
        ('regex = "ab(c)"\nsecretGroup = "z"', "`secretGroup` must be a group number"),
        ('regex = "ab(c)"\nsecretGroup = true', "`secretGroup` must be a group number"),
    ],
)
async def test_a_project_rule_that_would_burn_cpu_or_crash_is_a_clear_error_naming_the_file(
    repo: Callable[..., Path], session: Any, rules: str, says: str
) -> None:
    root = repo({"rules.toml": f'[[rules]]\nid = "mine"\n{rules}\n', "f.txt": "abc " + "x" * 1000 + "\n"})
    async with session(root, secret_rules="rules.toml") as call:
        scan = err(await call("scan_secrets"))
        report = ok(await call("readiness_report", checks=["secrets"]))
    assert "rules.toml" in scan and "'mine'" in scan and says in scan
    [check] = report["checks"]
    assert check["status"] == "skipped" and says in check["summary"]


@pytest.mark.parametrize(
    "text",
    [
        "rules = 5\n",
        "x = " + "[" * 50_000 + "]" * 50_000 + "\n",
        "x = " + "9" * 5000 + "\n",
        "".join(f'[[rules]]\nid = "r{i}"\nregex = "tok{i}"\n' for i in range(MAX_RULES + 1)),
    ],
)
def test_a_rule_file_of_the_wrong_shape_or_size_is_a_rule_error(text: str) -> None:
    with pytest.raises(RuleError, match=r"rules\.toml"):
        parse(text, "rules.toml")


def test_the_shipped_rules_pass_the_checks_project_rules_get() -> None:
    text = (Path(__file__).parents[2] / "common/data/secret_rules.toml").read_text(encoding="utf-8")
    assert len(parse(text, "builtin").rules) == len(builtin().rules)


# ----------------------------------------------------------------------------- cost of a scan


def test_overlapping_matches_are_claimed_once_by_the_first_rule() -> None:
    many = "\n".join(f'key{i} = "{AWS[:-4]}{i:04d}"' for i in range(900))
    hits, _ = find(many, "a.py", builtin())
    assert [h.line for h in hits] == list(range(1, 901))
    assert {h.rule for h in hits} == {"aws_access_key_id"}
    assert hits[7].excerpt == 'key7 = "[REDACTED:aws_access_key_id]"'


def test_a_long_line_shows_the_part_around_its_secret_with_every_secret_on_it_replaced() -> None:
    line = "x" * 5000 + f' a = "{AWS}" b = "{GH}" ' + "y" * 5000
    hits, _ = find(line, "a.min.js", builtin())
    assert len(hits) == 2 and all(len(h.excerpt) <= 160 for h in hits)
    assert hits[0].excerpt.startswith("…x") and "[REDACTED:aws_access_key_id]" in hits[0].excerpt
    assert "[REDACTED:github_token]" in hits[0].excerpt and hits[0].excerpt.endswith("…")
    assert AWS not in str(hits) and GH not in str(hits)


async def test_a_file_matching_everywhere_stops_at_the_per_file_cap_and_says_so(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"rules.toml": '[[rules]]\nid = "every_q"\nregex = "q"\n', "f.txt": "q\n" * 100_000})
    async with session(root, secret_rules="rules.toml") as call:
        scan = ok(await call("scan_secrets"))
    assert scan["total"] == MAX_HITS_PER_FILE + 2  # and the two lines of the rule file itself
    assert f"only the first {MAX_HITS_PER_FILE} of each are counted" in scan["note"]


def _rule(rule_id: str, regex: str, check: Callable[[str], bool]) -> Rule:
    return Rule(
        rule_id, "", (), parse(f'[[rules]]\nid="x"\nregex="{regex}"\n', "t").rules[0].pattern, 0, False, check
    )


async def test_a_scan_stopped_by_its_caller_stops_at_the_next_rule_and_its_thread_ends() -> None:
    """The worker thread is not abandoned to run on: once its call is cancelled it stops at the next
    checkpoint, so the thread is free again and the rules after it never run."""
    started, release = threading.Event(), threading.Event()
    later: list[str] = []

    def blocks(secret: str) -> bool:
        started.set()
        release.wait()
        return False

    def records(secret: str) -> bool:
        later.append(secret)
        return False

    rules = RuleSet((_rule("first", "tok[0-9]+", blocks), _rule("second", "tok[0-9]+", records)))

    async def scan() -> None:
        # Not abandoned: the task group below ends only when the thread has returned.
        await anyio.to_thread.run_sync(find, "tok1 tok2\n", "a.txt", rules)

    async with anyio.create_task_group() as tg:
        tg.start_soon(scan)
        await anyio.to_thread.run_sync(started.wait)
        tg.cancel_scope.cancel()
        release.set()
    assert later == []


async def test_a_scan_stopped_by_its_caller_stops_inside_a_rule_matching_everywhere() -> None:
    """A rule matching at every character of a large file, its check refusing each match, is stopped
    within a few thousand matches of the cancellation, not after all of them."""
    started, release = threading.Event(), threading.Event()
    examined: list[str] = []

    def refuses(secret: str) -> bool:
        started.set()
        release.wait()
        examined.append(secret)
        return False

    text = "a" * 1_900_000
    rules = RuleSet((_rule("every_a", "a", refuses),))

    async def scan() -> None:
        await anyio.to_thread.run_sync(find, text, "a.txt", rules)

    async with anyio.create_task_group() as tg:
        tg.start_soon(scan)
        await anyio.to_thread.run_sync(started.wait)
        tg.cancel_scope.cancel()
        release.set()
    assert 0 < len(examined) <= 4096


def test_a_rule_matching_everywhere_is_matched_only_up_to_the_per_file_cap() -> None:
    examined: list[str] = []

    def takes(secret: str) -> bool:
        examined.append(secret)
        return True

    hits, _ = find("q\n" * 100_000, "f.txt", RuleSet((_rule("every_q", "q", takes),)))
    assert len(hits) == MAX_HITS_PER_FILE and len(examined) == MAX_HITS_PER_FILE


def test_spans_are_the_same_taken_lazily_or_all_at_once() -> None:
    rule = _rule("tok", "tok[0-9]+", lambda s: not s.endswith("7"))
    text = " ".join(f"tok{i}" for i in range(20_000))
    spans = list(rule.secret_spans(text))
    assert len(spans) == 18_000 and spans == sorted(spans)
    lazy = rule.secret_spans(text)
    assert [next(lazy) for _ in range(3)] == spans[:3]


# ------------------------------------------------------------------------- what a scan cannot read


@pytest.mark.parametrize(
    ("bom", "encoding"),
    [
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF8, "utf-8"),
        (b"", "utf-16-le"),
    ],
)
async def test_a_secret_in_a_utf16_or_utf32_file_is_found(
    repo: Callable[..., Path], session: Any, bom: bytes, encoding: str
) -> None:
    text = f'$env:AWS_ACCESS_KEY_ID = "{AWS}"\r\n'
    root = repo({"deploy.ps1": bom + text.encode(encoding)})
    async with session(root) as call:
        result = await call("scan_secrets")
    scan = ok(result)
    assert [(f["path"], f["line"]) for f in scan["findings"]] == [("deploy.ps1", 1)]
    assert AWS not in str(result)


def test_binary_data_is_not_taken_for_utf16() -> None:
    assert decode(bytes(range(256)) * 10) is None
    assert decode(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR") is None


async def test_a_file_too_large_to_scan_makes_the_scan_say_so_and_readiness_inconclusive(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo(
        {"big.txt": "x" * 5000 + f'\nkey = "{AWS}"\n', "app.py": "x = 1\n", "logo.png": b"\x89PNG\0\0"}
    )
    async with session(root, max_file_bytes=4096) as call:
        scan = ok(await call("scan_secrets"))
        report = ok(await call("readiness_report", checks=["secrets"]))
    assert scan["total"] == 0 and scan["skipped_too_large"] == 1 and scan["skipped_binary"] == 1
    assert "1 larger than [deploy] max_file_bytes" in scan["note"]
    assert scan["not_scanned"] == ["big.txt"]  # named, so an agent knows which file to look at
    [check] = report["checks"]
    assert check["status"] == "skipped" and "not conclusive" in check["summary"]
    assert {"path": "big.txt", "text": "not scanned"}.items() <= check["evidence"][0].items()
    assert report["verdict"] == "inconclusive"


async def test_a_file_too_large_to_scan_that_the_policy_hides_is_counted_not_named(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"deploy/signing.key": "k" * 5000 + "\n", "app.py": "x = 1\n"})  # **/*.key: denied by default
    async with session(root, max_file_bytes=4096) as call:
        scan = ok(await call("scan_secrets"))
    assert scan["skipped_too_large"] == 1 and scan["not_scanned"] == []
    assert "signing.key" not in json.dumps(scan)


async def test_binary_files_alone_do_not_stop_a_pass_but_are_counted(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"app.py": "x = 1\n", "logo.png": b"\x89PNG\0\0\1\2"})
    async with session(root) as call:
        report = ok(await call("readiness_report", checks=["secrets"]))
    [check] = report["checks"]
    assert check["status"] == "pass" and "1 binary file(s) not scanned" in check["summary"]


# ---------------------------------------------------------------- files a diff shows as binary

ENCODINGS = [
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (b"", "utf-16-le"),
]


def _encoded(bom: bytes, encoding: str, text: str) -> bytes:
    return bom + text.replace("\n", "\r\n").encode(encoding)


@pytest.mark.parametrize(("bom", "encoding"), ENCODINGS)
async def test_a_secret_staged_in_a_utf16_or_utf32_file_is_found(
    repo: Callable[..., Path], session: Any, bom: bytes, encoding: str
) -> None:
    root = repo({"app.py": "x = 1\n"})
    # git diff calls the file binary; the index has the secret, the file on disk no longer does.
    write(root, {"deploy.ps1": _encoded(bom, encoding, f'# deploy\n$env:AWS_ACCESS_KEY_ID = "{AWS}"\n')})
    git(root, "add", "deploy.ps1")
    write(
        root, {"deploy.ps1": _encoded(bom, encoding, "# deploy\n$env:AWS_ACCESS_KEY_ID = $env:FROM_VAULT\n")}
    )
    async with session(root) as call:
        result = await call("scan_secrets")
        report = ok(await call("readiness_report", checks=["secrets"]))
    scan = ok(result)
    assert [(f["path"], f["line"], f["where"], f["rule"]) for f in scan["findings"]] == [
        ("deploy.ps1", 2, "staged", "aws_access_key_id")
    ]
    assert report["checks"][0]["status"] == "fail" and report["verdict"] == "fail"
    assert AWS not in str(result) and AWS not in str(report)


@pytest.mark.parametrize(("bom", "encoding"), ENCODINGS[:1] + ENCODINGS[3:])
async def test_history_reads_the_lines_a_commit_added_to_a_utf16_file_once(
    repo: Callable[..., Path], session: Any, bom: bytes, encoding: str
) -> None:
    root = repo({"deploy.ps1": _encoded(bom, encoding, "# deploy\n")})
    leaked = commit(
        root,
        {"deploy.ps1": _encoded(bom, encoding, f'# deploy\n$env:AWS_ACCESS_KEY_ID = "{AWS}"\n')},
        "add key",
    )
    # A later commit that changes another line still holds the secret: it did not add it.
    commit(
        root,
        {"deploy.ps1": _encoded(bom, encoding, f'# deploy v2\n$env:AWS_ACCESS_KEY_ID = "{AWS}"\n')},
        "rename",
    )
    commit(
        root,
        {"deploy.ps1": _encoded(bom, encoding, "# deploy v2\n$env:AWS_ACCESS_KEY_ID = $env:X\n")},
        "vault",
    )
    async with session(root) as call:
        result = await call("scan_secrets", scope="history")
    scan = ok(result)
    assert [(f["path"], f["line"], f["where"]) for f in scan["findings"]] == [("deploy.ps1", 2, leaked[:12])]
    assert scan["commits_scanned"] == 4 and scan["not_scanned"] == []
    assert AWS not in str(result)


async def test_a_text_file_gitattributes_marks_binary_is_still_scanned_in_diffs(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({".gitattributes": "*.cfg binary\n*.ini -diff\n"})
    leaked = commit(root, {"old.ini": f"aws_access_key_id = {AWS}\n"}, "add")
    commit(root, {"old.ini": "aws_access_key_id = from-vault\n"}, "vault")
    write(root, {"app.cfg": f"GITHUB_TOKEN={GH}\n"})
    git(root, "add", "app.cfg")
    write(root, {"app.cfg": "GITHUB_TOKEN=${GITHUB_TOKEN}\n"})
    async with session(root) as call:
        staged = ok(await call("scan_secrets"))
        history = ok(await call("scan_secrets", scope="history"))
    assert [(f["path"], f["where"]) for f in staged["findings"]] == [("app.cfg", "staged")]
    assert [(f["path"], f["line"], f["where"]) for f in history["findings"]] == [("old.ini", 1, leaked[:12])]


async def test_a_staged_binary_too_large_to_read_makes_the_scan_inconclusive(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"app.py": "x = 1\n"})
    write(root, {"dump.ps1": _encoded(codecs.BOM_UTF16_LE, "utf-16-le", "#" * 3000 + f'\nkey = "{AWS}"\n')})
    git(root, "add", "dump.ps1")
    write(root, {"dump.ps1": _encoded(codecs.BOM_UTF16_LE, "utf-16-le", "# emptied\n")})
    async with session(root, max_file_bytes=4096) as call:
        scan = ok(await call("scan_secrets"))
        report = ok(await call("readiness_report", checks=["secrets"]))
    assert scan["total"] == 0 and scan["skipped_too_large"] == 1 and scan["not_scanned"] == ["dump.ps1"]
    assert report["checks"][0]["status"] == "skipped" and report["verdict"] == "inconclusive"


async def test_a_staged_image_is_not_text_and_does_not_stop_a_pass(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"app.py": "x = 1\n", "logo.png": b"\x89PNG\0\0\1\2"})
    write(root, {"logo.png": b"\x89PNG\0\0\3\4" + AWS.encode()})
    git(root, "add", "logo.png")
    write(root, {"logo.png": b"\x89PNG\0\0\5\6"})
    async with session(root) as call:
        scan = ok(await call("scan_secrets"))
        report = ok(await call("readiness_report", checks=["secrets"]))
    assert scan["total"] == 0 and scan["skipped_binary"] == 1 and scan["not_scanned"] == []
    assert report["checks"][0]["status"] == "pass"


def test_a_binary_files_line_names_the_file_whatever_and_or_quotes_its_name_holds() -> None:
    assert binary_name("Binary files a/x and y and b/x and y differ") == "x and y"
    assert binary_name('Binary files "a/we\\"ird\\tx" and "b/we\\"ird\\tx" differ') == 'we"ird\tx'
    assert binary_name("Binary files /dev/null and b/new file differ") == "new file"
    assert binary_name("Binary files a/gone and /dev/null differ") is None
    assert binary_name("Binary files a/x and /dev/null and b/x and /dev/null differ") == "x and /dev/null"


def test_a_diff_lists_each_binary_file_it_adds_or_changes_with_its_blobs() -> None:
    zero, one, two = "0" * 40, "1" * 40, "2" * 40
    diff = (
        "diff --git a/new.ps1 b/new.ps1\nnew file mode 100644\n"
        f"index {zero}..{one}\nBinary files /dev/null and b/new.ps1 differ\n"
        "diff --git a/old.ps1 b/old.ps1\ndeleted file mode 100644\n"
        f"index {two}..{zero}\nBinary files a/old.ps1 and /dev/null differ\n"
        f"diff --git a/x.ps1 b/x.ps1\nindex {one}..{two} 100644\nBinary files a/x.ps1 and b/x.ps1 differ\n"
    )
    groups = added_lines(diff).groups
    assert [(g.path, g.lines, g.blobs and (g.blobs.old, g.blobs.new)) for g in groups] == [
        ("new.ps1", [], (zero, one)),
        ("x.ps1", [], (one, two)),
    ]


def test_a_binary_files_line_that_names_no_file_is_counted_and_never_read() -> None:
    zero, one = "0" * 40, "1" * 40
    diff = (
        f"diff --git a/x b/x\nnew file mode 100644\nindex {zero}..{one}\nBinary files /dev/nu\n"
        f"diff --git a/y b/y\nnew file mode 100644\nindex {zero}..{one}\nBinary files a/y and b/z differ\n"
        "diff --git a/gone b/gone\ndeleted file mode 100644\nBinary files a/gone and /dev/null differ\n"
    )
    found = added_lines(diff)
    assert found.groups == [] and found.unnamed == 2


def test_a_cut_output_loses_its_partial_last_line() -> None:
    assert complete_lines("a\nBinary files /dev/nu", truncated=True) == "a\n"
    assert complete_lines("a\nBinary files /dev/null and b/x differ", truncated=True) == "a\n"
    assert complete_lines("a\nb\n", truncated=True) == "a\nb\n"
    assert complete_lines("no newline", truncated=True) == ""
    assert complete_lines("a\nb", truncated=False) == "a\nb"


ENV_UTF16 = f"# prod\nGITHUB_TOKEN={GH}\nDB_HOST=prod-db.internal\n".encode("utf-16")
BINARY_ENV = b"Binary files /dev/null and b/zz/.env differ"


def _cut_inside_the_binary_line(root: Path, args: list[str], into: int) -> int:
    """The output bound that cuts git's output `into` bytes into zz/.env's `Binary files` line."""
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, check=True).stdout
    return out.index(BINARY_ENV) + into


@pytest.mark.parametrize("into", [5, 20, len(BINARY_ENV)])
async def test_history_cut_inside_a_denied_binary_files_line_shows_nothing_and_is_inconclusive(
    repo: Callable[..., Path], session: Any, monkeypatch: pytest.MonkeyPatch, into: int
) -> None:
    root = repo({"README.md": "hi\n"})
    commit(root, {"zz/.env": ENV_UTF16}, "env")  # newest first in the log: its diff comes first
    log = ["log", "-p", *DIFF_OPTIONS, "--max-count=1000", f"--format={COMMIT_MARK}%H", "HEAD", "--"]
    async with session(root) as call:
        whole = ok(await call("scan_secrets", scope="history"))
        monkeypatch.setattr(secrets, "HISTORY_MAX_OUTPUT", _cut_inside_the_binary_line(root, log, into))
        cut = ok(await call("scan_secrets", scope="history"))
    assert whole["total"] == 1 and whole["findings"] == []  # found in .env, and withheld
    assert cut["total"] == 0 and cut["findings"] == [] and GH not in json.dumps(cut)
    assert cut["truncated"] and cut["skipped_unreadable"] == 1 and cut["not_scanned"] == []
    assert "was not scanned" in cut["note"]


@pytest.mark.parametrize("into", [0, 20, len(BINARY_ENV)])
async def test_a_staged_diff_cut_at_its_bound_is_inconclusive_never_a_pass(
    repo: Callable[..., Path], session: Any, monkeypatch: pytest.MonkeyPatch, into: int
) -> None:
    root = repo({"README.md": "hi\n"})
    write(root, {"zz/.env": ENV_UTF16})
    git(root, "add", "zz/.env")
    (root / "zz" / ".env").unlink()  # the secret is only in the index: only the staged diff holds it
    async with session(root) as call:
        whole = ok(await call("scan_secrets"))
        bound = _cut_inside_the_binary_line(root, ["diff", "--cached", *DIFF_OPTIONS], into)
        monkeypatch.setattr(secrets, "STAGED_MAX_OUTPUT", bound)
        cut = ok(await call("scan_secrets"))
        report = ok(await call("readiness_report", checks=["secrets"]))
    assert whole["total"] == 1 and whole["findings"] == []  # found in the staged .env, and withheld
    assert cut["total"] == 0 and cut["findings"] == [] and GH not in json.dumps(cut)
    assert cut["truncated"] and cut["skipped_unreadable"] == 1 and "staged changes" in cut["note"]
    assert report["checks"][0]["status"] == "skipped" and report["verdict"] == "inconclusive"


# ----------------------------------------------------------------------------------- Dockerfiles


async def test_a_dockerfile_finding_names_the_variable_never_the_secret(
    repo: Callable[..., Path], session: Any
) -> None:
    dockerfile = f"FROM python:3.12\nARG GITHUB_TOKEN {GH}\nENV {GH}\nARG PASSWORD hunter2xyz\nUSER app\n"
    root = repo({"Dockerfile": dockerfile})
    async with session(root) as call:
        result = await call("check_dockerfile")
        report = ok(await call("readiness_report", checks=["dockerfile"]))
    messages = [
        (f["line"], f["message"].split(" holds")[0].split(" looks")[0]) for f in ok(result)["findings"]
    ]
    assert (2, "ARG GITHUB_TOKEN") in messages and (2, "ARG [REDACTED:github_token]") in messages
    assert (3, "ENV [REDACTED:github_token]") in messages and (4, "ARG PASSWORD") in messages
    for shown in (str(result), str(report)):
        assert GH not in shown and "hunter2xyz" not in shown
