"""Repository files are hostile input: names git quotes, lines that look like diff headers,
configuration built to crash a parser. Each is answered, never leaked and never a crash."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from servers.deploy import readiness
from servers.deploy.context import DeployContext
from servers.deploy.secrets import added_lines, new_name, unquote
from tests.helpers import commit, git, ok

# Assembled at run time so this file itself holds no secret-shaped literal.
AWS = "AKIA" + "Q7XM2LB5ZP4KD9WF"
PASSPHRASE = "correct-horse-battery"

pytestmark = pytest.mark.anyio


def _text(result: Any) -> str:
    return str(result.structured_content) + "".join(getattr(b, "text", "") for b in result.content)


# ------------------------------------------------------------------------------ names from git


def test_quoted_and_tab_ended_names_are_read_as_the_files_they_name() -> None:
    assert new_name("+++ b/prod signing.key\t") == "prod signing.key"
    assert new_name('+++ "b/we\\"ird.py"') == 'we"ird.py'
    assert new_name('+++ "b/back\\\\slash\\ttab\\001.py"') == "back\\slash\ttab\x01.py"
    assert new_name('+++ "b/caf\\303\\251.py"') == "café.py"
    assert new_name("+++ /dev/null") is None
    assert unquote('"unterminated') is None and unquote('"bad \\q escape"') is None


async def test_a_denied_file_whose_name_has_a_space_stays_denied_in_diff_evidence(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"README.md": "hi\n"})
    git(root, "tag", "v0")
    commit(root, {"prod signing.key": f"# TODO rotate: the passphrase is {PASSPHRASE}\n"}, "key")
    async with session(root) as call:
        report = ok(await call("readiness_report", checks=["no_debug_added"], base="v0"))
        history = await call("scan_secrets", scope="history")
    evidence = report["checks"][0]["evidence"]
    assert [e["path"] for e in evidence] == ["prod signing.key"]
    assert PASSPHRASE not in str(report) and PASSPHRASE not in _text(history)


@pytest.mark.parametrize("name", ['we"ird.py', "back\\slash.py", "tab\there.py", "a b.py", "café.py"])
async def test_a_secret_in_a_file_git_quotes_is_found_in_history_under_its_real_name(
    repo: Callable[..., Path], session: Any, name: str
) -> None:
    root = repo({"README.md": "hi\n"})
    commit(root, {name: f'KEY = "{AWS}"\n'}, "add")
    git(root, "rm", "-q", "--", name)
    git(root, "commit", "-q", "-m", "remove")
    async with session(root) as call:
        scan = ok(await call("scan_secrets", scope="history"))
    assert [(f["path"], f["line"]) for f in scan["findings"]] == [(name, 1)]
    assert AWS not in str(scan)


async def test_a_staged_secret_in_a_quoted_name_is_found(repo: Callable[..., Path], session: Any) -> None:
    root = repo({"README.md": "hi\n"})
    (root / 'q"uoted.env.py').write_text(f'KEY = "{AWS}"\n', encoding="utf-8")
    git(root, "add", "--", 'q"uoted.env.py')
    (root / 'q"uoted.env.py').write_text("KEY = None\n", encoding="utf-8")
    async with session(root) as call:
        scan = ok(await call("scan_secrets"))
    assert [(f["path"], f["where"]) for f in scan["findings"]] == [('q"uoted.env.py', "staged")]


# --------------------------------------------------------------------------- forged diff headers


def test_a_line_that_looks_like_a_file_header_stays_in_its_own_file() -> None:
    diff = (
        "diff --git a/.env.production b/.env.production\n"
        "new file mode 100644\n"
        "--- /dev/null\n"
        "+++ b/.env.production\n"
        "@@ -0,0 +1,3 @@\n"
        "+A=1\n"
        "+++ b/README.md\n"
        "+TOKEN=x\n"
        "diff --git a/README.md b/README.md\n"
        "--- a/README.md\n"
        "+++ b/README.md\n"
        "@@ -1 +1 @@\n"
        "-old\n"
        "+new\n"
        "\\ No newline at end of file\n"
    )
    groups = added_lines(diff).groups
    assert [(g.path, g.lines) for g in groups] == [
        (".env.production", [(1, "A=1"), (2, "++ b/README.md"), (3, "TOKEN=x")]),
        ("README.md", [(1, "new")]),
    ]


async def test_forged_headers_in_a_denied_file_do_not_move_its_lines_to_an_allowed_one(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"README.md": "hi\n", "CHANGELOG.md": "x\n"})
    git(root, "tag", "v0")
    secret = 'API_TOKEN="Zx9fQ2LmP4rT8vW1yB6nK3sD"'
    env = f"A=1\n++ b/README.md\nDB_HOST=internal  # TODO old admin pw was hunter2\n{secret}\n"
    commit(root, {".env.production": env}, "env")
    async with session(root) as call:
        report = ok(await call("readiness_report", checks=["no_debug_added"], base="v0"))
        scan = ok(await call("scan_secrets", scope="history"))
    assert [e["path"] for e in report["checks"][0]["evidence"]] == [".env.production"]
    assert "hunter2" not in str(report)
    assert scan["findings"] == [] and scan["total"] == 1 and scan["excluded_files"] == [".env.production"]


async def test_a_forged_header_in_an_allowed_file_keeps_its_findings_and_line_numbers(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"README.md": "hi\n"})
    commit(root, {"app.py": f'x = 1\n# ++ b/.env\n++ b/.env\nKEY = "{AWS}"\n'}, "add")
    async with session(root) as call:
        scan = ok(await call("scan_secrets", scope="history"))
    assert [(f["path"], f["line"]) for f in scan["findings"]] == [("app.py", 4)]


# ------------------------------------------------------------------------------------ env drift


async def test_env_drift_never_names_the_keys_of_a_denied_env_file(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo(
        {
            ".env.example": "DATABASE_URL=\n",
            ".env": "DATABASE_URL=postgres://x\nSTRIPE_LIVE_KEY_FOR_ACME=1\nADMIN_BACKDOOR_PW=1\n",
        }
    )
    async with session(root) as call:
        report = ok(await call("check_config"))
        readiness = ok(await call("readiness_report", checks=["config"]))
    for shown in (str(report), str(readiness)):
        assert "STRIPE_LIVE_KEY_FOR_ACME" not in shown and "ADMIN_BACKDOOR_PW" not in shown
    assert report["verdict"] == "warn" and report["total"] == 1 and report["problems"] == []
    assert report["excluded_files"] == [".env"]


async def test_env_drift_between_readable_files_names_both(repo: Callable[..., Path], session: Any) -> None:
    root = repo({".env.example": "A=\n", ".env.template": "A=\nB=\n"})
    async with session(root) as call:
        report = ok(await call("check_config"))
    [problem] = report["problems"]
    assert problem["path"] == ".env.example" and problem["compared_with"] == [".env.template"]
    assert "B" in problem["message"]


# ------------------------------------------------------------------------- configuration parsing


DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "9" * 5000


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.toml", f"a = {DEEP}\n"),
        ("deep.json", DEEP),
        ("deep.yaml", f"a: {DEEP}\n"),
        ("huge.toml", f"x = {HUGE}\n"),
        ("huge.json", f"[{HUGE}]"),
        ("huge.yaml", f"x: {HUGE}\n"),
        ("hex.yaml", f"kind: Pod\napiVersion: v1\nspec:\n  containers:\n  - image: 0x{'f' * 20000}\n"),
    ],
)
async def test_hostile_configuration_is_a_parse_problem_not_a_crash(
    repo: Callable[..., Path], session: Any, name: str, text: str
) -> None:
    root = repo({name: text, "CHANGELOG.md": "x\n"})
    async with session(root) as call:
        report = ok(await call("check_config"))
        readiness = ok(await call("readiness_report", checks=["config", "changelog"]))
    assert report["verdict"] == "fail"
    assert [(p["path"], p["kind"]) for p in report["problems"]] == [(name, "parse_error")]
    assert [(c["id"], c["status"]) for c in readiness["checks"]] == [
        ("changelog", "pass"),
        ("config", "fail"),
    ]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pyproject.toml", 'project = "x"\n'),
        ("pyproject.toml", '[tool]\npoetry = "x"\n'),
        ("Cargo.toml", f"[package]\nversion = {HUGE}\n"),
        ("Cargo.toml", 'package = "x"\n'),
        ("package.json", '["not", "an", "object"]'),
    ],
)
async def test_a_manifest_of_the_wrong_shape_means_no_declared_version(
    repo: Callable[..., Path], session: Any, name: str, text: str
) -> None:
    root = repo({name: text, "CHANGELOG.md": "x\n"})
    async with session(root) as call:
        readiness = ok(await call("readiness_report", checks=["version_bumped", "changelog"]))
    assert [(c["id"], c["status"]) for c in readiness["checks"]] == [
        ("version_bumped", "skipped"),
        ("changelog", "pass"),
    ]


async def test_a_check_that_crashes_is_skipped_with_the_reason_and_the_report_still_comes(
    repo: Callable[..., Path], session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crashes(ctx: DeployContext, base: str | None) -> readiness.Found:
        raise ValueError(f"cannot read {AWS}")

    monkeypatch.setitem(readiness.CHECKS, "version_bumped", readiness.Spec("Crashes", crashes))
    root = repo({"CHANGELOG.md": "x\n"})
    async with session(root) as call:
        report = ok(await call("readiness_report", checks=["version_bumped", "changelog"]))
    crashed, changelog = report["checks"]
    assert crashed["status"] == "skipped" and "ValueError" in crashed["summary"]
    assert AWS not in str(report)
    assert changelog["status"] == "pass" and report["verdict"] == "inconclusive"


async def test_a_version_of_thousands_of_digits_is_compared_not_crashed_on(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"VERSION": f"1.{HUGE}\n", "CHANGELOG.md": "x\n"})
    git(root, "tag", f"v0.{HUGE[:200]}")
    commit(root, {"app.py": "x = 1\n"}, "more")
    async with session(root) as call:
        report = ok(await call("readiness_report", checks=["version_bumped"]))
    [check] = report["checks"]
    assert check["status"] in ("pass", "fail") and "could not run" not in check["summary"]


async def test_a_renamed_file_is_one_entry_under_its_real_names(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"docs/old name.md": "hi\n"})
    git(root, "mv", "docs/old name.md", "docs/new name.md")
    async with session(root) as call:
        report = ok(await call("readiness_report", checks=["worktree_clean"]))
    [check] = report["checks"]
    assert sorted(e["path"] for e in check["evidence"]) == ["docs/new name.md", "docs/old name.md"]
