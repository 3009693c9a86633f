"""The repository's own settings cannot loosen deploy readiness, the secret scan or the hosts
check_http may call; what it tried is refused with its reason, and the report names every check the
humans' settings waived."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.deploy.server import build_server
from tests.helpers import ok, settings_for, write

pytestmark = pytest.mark.anyio

AWS = "AKIA" + "QWERTYUIOPASDFGH"
PROJECT = {
    "app.py": f'AWS_ACCESS_KEY_ID = "{AWS}"\n',
    "CHANGELOG.md": "## 1.0.0\n",
    "uv.lock": "",
    "bad.json": "{oops",
}
PYPROJECT = '[project]\nname = "x"\nversion = "1.0.0"\n'


async def _call(root: Path, tool: str, policy: str | None = None, **arguments: Any) -> tuple[Any, Any]:
    """Load the settings as a server would (the project's file in play) and call one tool."""
    settings = settings_for(root, policy)
    async with Client(build_server(settings), mode="legacy") as client:
        result = await client.call_tool(tool, arguments)
    return result, settings


def _by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in report["checks"]}


async def test_a_project_cannot_disable_or_downgrade_blocker_checks(repo: Callable[..., Path]) -> None:
    root = repo(
        {
            **PROJECT,
            "pyproject.toml": PYPROJECT + "[tool.onrecord.deploy]\ndisabled = ['tests', 'lint']\n"
            "advisory = ['secrets', 'config', 'dockerfile', 'worktree_clean', 'pushed']\n",
        }
    )
    result, settings = await _call(root, "readiness_report")
    report = ok(result)
    checks = _by_id(report)
    assert report["verdict"] == "fail" and {"secrets", "config"} <= set(report["blocking"])
    assert checks["secrets"]["severity"] == "blocker" and checks["secrets"]["status"] == "fail"
    assert "tests" in checks and "lint" in checks  # disabled by nobody the humans trust
    assert report["waived"] == []
    pyproject = root / "pyproject.toml"
    assert settings.refused == [
        f"{pyproject}: deploy.disabled = ['tests', 'lint'] ignored: a project file may only drop entries of "
        "this list (the default: [])",
        f"{pyproject}: deploy.advisory = ['secrets', 'config', 'dockerfile', 'worktree_clean', 'pushed'] "
        "ignored: a project file may only drop entries of this list (the default: [])",
    ]


def test_onrecord_readiness_fails_on_a_repository_that_waives_its_own_blockers(
    repo: Callable[..., Path],
) -> None:
    root = repo(
        {
            **PROJECT,
            "pyproject.toml": PYPROJECT + "[tool.onrecord.deploy]\ndisabled = ['tests', 'lint']\n"
            "advisory = ['secrets', 'config', 'worktree_clean', 'pushed']\n",
        }
    )
    cli = [
        sys.executable,
        "-m",
        "clients.cli",
        "readiness",
        "--root",
        str(root),
        "--checks",
        "secrets,config",
    ]
    done = subprocess.run(
        cli, capture_output=True, encoding="utf-8", timeout=120, cwd=Path(__file__).parents[2]
    )
    assert done.returncode == 1, done.stderr
    assert "verdict: fail" in done.stderr


async def test_checks_the_humans_waived_are_listed_with_the_file_that_said_so(
    repo: Callable[..., Path], tmp_path: Path
) -> None:
    root = repo({**PROJECT, "pyproject.toml": PYPROJECT})
    policy = "[deploy]\ndisabled = ['tests', 'lint']\nadvisory = ['secrets', 'pushed']\n"
    result, settings = await _call(root, "readiness_report", policy)
    report = ok(result)
    human = settings.origin("deploy", "disabled")[0]
    assert human != str(root / "pyproject.toml") and settings.refused == []
    assert report["waived"] == [
        {"check": "tests", "how": "disabled", "source": human},
        {"check": "lint", "how": "disabled", "source": human},
        {"check": "pushed", "how": "advisory", "source": human},
        {"check": "secrets", "how": "advisory", "source": human},
    ]
    assert "secrets advisory by " + human in report["note"]
    assert _by_id(report)["secrets"]["status"] == "warn"
    # The project may take a check back out of the humans' list: it then blocks again.
    write(root, {"pyproject.toml": PYPROJECT + "[tool.onrecord.deploy]\nadvisory = ['pushed']\n"})
    report = ok((await _call(root, "readiness_report", policy, checks=["secrets"]))[0])
    assert _by_id(report)["secrets"]["severity"] == "blocker" and report["verdict"] == "fail"


RULES_ALLOW_PATHS = "[allowlist]\npaths = ['.*']\n"
RULES_ALLOW_ALL = "[allowlist]\nregexes = ['.']\nstopwords = ['a']\n"
RULES_REPLACE = """
[[rules]]
id = "aws_access_key_id"
description = "never matches"
regex = '''\\bNEVER_MATCHES_[0-9]{40}\\b'''
"""


@pytest.mark.parametrize(
    ("rules", "ignored"),
    [
        (RULES_ALLOW_PATHS, "rules.toml: [allowlist] ignored: the project's settings named this file"),
        (RULES_ALLOW_ALL, "rules.toml: [allowlist] ignored: the project's settings named this file"),
        (RULES_REPLACE, "rules.toml: rule(s) aws_access_key_id ignored: the id of a built-in rule"),
    ],
    ids=["allowlist-paths", "allowlist-regexes", "replace-builtin-id"],
)
async def test_a_project_rule_file_cannot_weaken_the_built_in_rules(
    repo: Callable[..., Path], rules: str, ignored: str
) -> None:
    root = repo(
        {
            **PROJECT,
            "rules.toml": rules,
            "pyproject.toml": PYPROJECT + "[tool.onrecord.deploy]\nsecret_rules = 'rules.toml'\n",
        }
    )
    scan = ok((await _call(root, "scan_secrets"))[0])
    assert [(f["path"], f["rule"]) for f in scan["findings"]] == [("app.py", "aws_access_key_id")]
    (message,) = scan["ignored_settings"]
    assert message.startswith(ignored)
    assert "ignored_settings" in scan["note"]
    report = ok((await _call(root, "readiness_report", checks=["secrets"]))[0])
    secrets = _by_id(report)["secrets"]
    assert report["verdict"] == "fail" and secrets["status"] == "fail"
    assert any(e["text"].startswith(ignored) for e in secrets["evidence"])


async def test_the_humans_rule_file_may_allowlist_and_a_project_one_may_add_rules(
    repo: Callable[..., Path], tmp_path: Path
) -> None:
    root = repo({**PROJECT, "rules.toml": RULES_ALLOW_PATHS})
    scan = ok((await _call(root, "scan_secrets", "[deploy]\nsecret_rules = 'rules.toml'\n"))[0])
    assert scan["findings"] == [] and scan["ignored_settings"] == []
    added = "[[rules]]\nid = 'acme_key'\nregex = '''\\bacme_[a-z0-9]{24}\\b'''\nkeywords = ['acme_']\n"
    write(
        root,
        {
            "rules.toml": added,
            "app.cfg": "key: acme_0123456789abcdefghijklmn\n",
            "pyproject.toml": PYPROJECT + "[tool.onrecord.deploy]\nsecret_rules = 'rules.toml'\n",
        },
    )
    scan = ok((await _call(root, "scan_secrets"))[0])
    assert {f["rule"] for f in scan["findings"]} == {"aws_access_key_id", "acme_key"}
    assert scan["ignored_settings"] == []


async def test_a_project_cannot_shrink_what_the_scan_reads(repo: Callable[..., Path]) -> None:
    root = repo(
        {
            **PROJECT,
            "app.py": "#" * 1200 + "\n" + PROJECT["app.py"],
            "pyproject.toml": PYPROJECT
            + "[tool.onrecord.deploy]\nmax_file_bytes = 1000\nhistory_commits = 1\n",
        }
    )
    result, settings = await _call(root, "scan_secrets")
    scan = ok(result)
    assert [f["rule"] for f in scan["findings"]] == ["aws_access_key_id"] and scan["skipped_files"] == 0
    assert [r.split(": ", 1)[1] for r in settings.refused] == [
        "deploy.max_file_bytes = 1000 ignored: only the humans' settings may set it",
        "deploy.history_commits = 1 ignored: only the humans' settings may set it",
    ]


async def test_a_baseline_entry_must_pin_the_line(repo: Callable[..., Path]) -> None:
    loose = "app.py:aws_access_key_id\napp.py:aws_access_key_id:\napp.py:aws_access_key_id:x\n"
    root = repo({**PROJECT, ".onrecord-secrets-baseline": loose})
    scan = ok((await _call(root, "scan_secrets"))[0])
    [finding] = scan["findings"]
    assert re.fullmatch(r"app\.py:aws_access_key_id:1:[0-9a-f]{12}", finding["fingerprint"])
    assert scan["suppressed_by_baseline"] == 0
    assert scan["ignored_settings"] == [
        ".onrecord-secrets-baseline: 3 entries that are not a fingerprint ignored; accept a finding by its "
        "fingerprint, path:rule:line:hash"
    ]
    write(root, {".onrecord-secrets-baseline": finding["fingerprint"] + "\n"})
    scan = ok((await _call(root, "scan_secrets"))[0])
    assert scan["findings"] == [] and scan["suppressed_by_baseline"] == 1 and scan["ignored_settings"] == []
    report = ok((await _call(root, "readiness_report", checks=["secrets"]))[0])
    assert "1 accepted in the baseline" in _by_id(report)["secrets"]["summary"]


async def test_a_project_base_is_refused(repo: Callable[..., Path]) -> None:
    root = repo({**PROJECT, "pyproject.toml": PYPROJECT + "[tool.onrecord.deploy]\nbase = 'HEAD'\n"})
    result, settings = await _call(root, "readiness_report", checks=["no_debug_added"])
    assert ok(result)["base"] != "HEAD"
    assert settings.refused == [
        f"{root / 'pyproject.toml'}: deploy.base = 'HEAD' ignored: only the humans' settings may set it"
    ]


async def test_a_project_settings_file_linking_out_of_the_root_cannot_open_check_http(tmp_path: Path) -> None:
    shared = tmp_path / "mono" / "shared" / "onrecord.toml"
    shared.parent.mkdir(parents=True)
    shared.write_text(
        textwrap.dedent(
            """
            [deploy]
            allowed_hosts = ["169.254.169.254", "localhost"]
            allow_private_hosts = ["169.254.169.254", "localhost"]
            """
        ),
        encoding="utf-8",
    )
    root = tmp_path / "mono" / "svc"
    root.mkdir()
    (root / ".onrecord.toml").symlink_to("../shared/onrecord.toml")
    policy = '[policy]\nallow = ["deploy.check_http"]\n'
    result, settings = await _call(root, "check_http", policy, url="http://localhost:9/", contains="x")
    probe = ok(result)
    assert probe["verdict"] == "fail" and "not in [deploy] allowed_hosts" in probe["problems"][0]
    assert probe["contains_found"] is not True
    assert any("a symbolic link" in r for r in settings.refused)


@pytest.mark.parametrize(
    "files",
    [
        {"pyproject.toml": 'project = "x"\n'},
        {"Cargo.toml": 'package = "x"\n'},
        {"pyproject.toml": "[project]\nversion = " + "9" * 5000 + "\n"},
    ],
    ids=["project-string", "package-string", "huge-integer"],
)
async def test_a_malformed_manifest_is_no_version_not_a_crashed_report(
    repo: Callable[..., Path], files: dict[str, str]
) -> None:
    root = repo({"CHANGELOG.md": "## 1.0.0\n", **files})
    report = ok((await _call(root, "readiness_report", checks=["version_bumped", "changelog"]))[0])
    assert [c["id"] for c in report["checks"]] == ["version_bumped", "changelog"]


async def test_a_project_rule_cannot_probe_a_file_the_policy_denies(repo: Callable[..., Path]) -> None:
    """A rule the project's file adds scans the files the caller may read, never a denied `.env`:
    whether it matched there would confirm a guess at what the file holds."""
    guess = "[[rules]]\nid = 'probe'\nregex = '''colour is Summer2024'''\nkeywords = ['colour']\n"
    wrong = guess.replace("Summer2024", "Winter1999")
    seen = []
    for rules in (wrong, guess):
        root = repo(
            {
                **PROJECT,
                ".env": "# my colour is Summer2024\n",
                "notes.txt": "my colour is Summer2024\n",
                "rules.toml": rules,
                "pyproject.toml": PYPROJECT + "[tool.onrecord.deploy]\nsecret_rules = 'rules.toml'\n",
            }
        )
        scan = ok((await _call(root, "scan_secrets"))[0])
        seen.append(scan)
    wrong_scan, right_scan = seen
    # The readable copy is found by the project's rule; the denied one is not scanned by it.
    probes = [f["path"] for f in right_scan["findings"] if f["rule"] == "probe" and f["path"] != "rules.toml"]
    assert probes == ["notes.txt"]
    assert right_scan["total"] - wrong_scan["total"] == 1  # the readable file's finding, nothing more
    assert right_scan["note"] == wrong_scan["note"]
