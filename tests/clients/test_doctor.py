from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clients import doctor
from clients.cli import main
from clients.doctor import Finding, diagnose, git_finding, python_finding
from clients.probe import Launch, ProbeResult, probe_all
from common.audit import AuditLog
from tests.helpers import make_repo


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CODEX_HOME", raising=False)
    return home


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_repo(tmp_path / "project", {"README.md": "# demo\n"})
    monkeypatch.chdir(root)
    return root


def state() -> Path:
    return Path(os.environ["ONRECORD_STATE_DIR"])


async def servers_start(launches: list[Launch]) -> list[ProbeResult]:
    """Our own servers answer (tested for real below); host entries are started for real."""
    real = [launch for launch in launches if not launch.name.startswith("server ")]
    started = iter(await probe_all(real))
    return [
        ProbeResult(launch, ok=True, tools=["t"], server="fake")
        if launch.name.startswith("server ")
        else next(started)
        for launch in launches
    ]


def problems(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.status == "problem"]


def test_a_healthy_setup_has_no_problems(
    home: Path, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["install", "claude-desktop", "--servers", "repo"]) == 0
    log = AuditLog(state() / "audit", "repo")
    log.write("call", {"call_id": "1", "tool": "read_file"})
    log.write("result", {"call_id": "1", "status": "ok"})
    log.close()
    capsys.readouterr()
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("No problems found.")
    for line in (
        "ok       python: Python 3.",
        "ok       git: git ",
        "ok       mcp: MCP SDK 2.3",
        "ok       server repo: starts and lists 12 tools (repo 0.1.0)",
        "ok       server testing: starts and lists 8 tools (testing 0.1.0)",
        "every chain verifies",
        "ok       host claude-desktop (user) onrecord-repo: starts and lists 12 tools",
    ):
        assert line in out, (line, out)
    # Settings files in trust order: managed, user, project.
    order = [line.split(":")[0].split()[-1] for line in out.splitlines() if "settings (" in line]
    assert order == ["(managed)", "(user)", "(project)"]


def test_a_settings_file_that_does_not_parse_is_a_problem_with_its_fix(home: Path, project: Path) -> None:
    user = Path(os.environ["XDG_CONFIG_HOME"]) / "onrecord" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("[policy\n", encoding="utf-8")
    (found,) = problems(diagnose(project, None, servers_start))
    assert found.check == "settings (user)" and "not valid TOML" in found.detail and str(user) in found.fix


def test_a_missing_policy_file_is_a_problem(home: Path, project: Path) -> None:
    (found,) = problems(diagnose(project, str(project / "nosuch.toml"), servers_start))
    assert found.check == "settings (cli)" and "--policy" in found.fix


def test_what_a_project_file_was_refused_is_listed(home: Path, project: Path) -> None:
    (project / ".onrecord.toml").write_text(
        '[policy]\nallow = ["repo.*"]\nmode = "shadow"\n', encoding="utf-8"
    )
    findings = diagnose(project, None, servers_start)
    assert not problems(findings)
    refused = [f.detail for f in findings if f.detail.startswith("refused: ")]
    assert len(refused) == 2 and any("policy.allow = 'repo.*'" in r for r in refused)
    assert any(
        f.check == "settings (project)" and f.detail.endswith(".onrecord.toml: parses") for f in findings
    )


def test_a_server_that_does_not_start_is_a_problem(home: Path, project: Path) -> None:
    async def repo_breaks(launches: list[Launch]) -> list[ProbeResult]:
        return [
            ProbeResult(
                launch, ok=launch.name != "server repo", tools=["t"], error="stopped before answering (x)"
            )
            for launch in launches
        ]

    (found,) = problems(diagnose(project, None, repo_breaks))
    assert found.check == "server repo" and "stopped before answering" in found.detail and found.fix


def test_an_audit_directory_that_is_not_writable_is_a_problem(home: Path, project: Path) -> None:
    state().mkdir(parents=True)
    (state() / "audit").write_text("not a directory", encoding="utf-8")
    (found,) = problems(diagnose(project, None, servers_start))
    assert found.check == "audit" and "is not a directory" in found.detail and "[audit] dir" in found.fix


def test_an_audit_chain_that_does_not_verify_is_a_problem(home: Path, project: Path) -> None:
    log = AuditLog(state() / "audit", "repo")
    log.write("call", {"call_id": "1", "tool": "read_file", "arguments": {"path": "a"}})
    log.close()
    assert log.path is not None
    log.path.write_text(
        log.path.read_text(encoding="utf-8").replace('"path":"a"', '"path":"b"'), encoding="utf-8"
    )
    (found,) = problems(diagnose(project, None, servers_start))
    assert found.check == "audit" and "chain broken" in found.detail and "edited" in found.detail
    assert "onrecord audit verify" in found.fix


def test_a_host_config_pointing_at_a_missing_command_is_a_problem(home: Path, project: Path) -> None:
    path = home / ".cursor" / "mcp.json"
    path.parent.mkdir()
    entry = {
        "command": str(home / "old-venv" / "bin" / "onrecord"),
        "args": ["serve", "repo", "--root", str(project)],
    }
    path.write_text(
        json.dumps({"mcpServers": {"onrecord-repo": entry, "other": {"command": "x"}}}), encoding="utf-8"
    )
    (found,) = problems(diagnose(project, None, servers_start))
    assert found.check == "host cursor (user) onrecord-repo" and "no such file" in found.detail
    assert "onrecord install cursor" in found.fix


def test_a_host_config_that_cannot_be_read_is_a_problem(home: Path, project: Path) -> None:
    path = project / ".vscode" / "mcp.json"
    path.parent.mkdir()
    path.write_text('{"servers": {"onrecord-repo": {"command": "onrecord"}},', encoding="utf-8")
    (found,) = problems(diagnose(project, None, servers_start))
    assert found.check == "host vscode (project)" and "not valid JSON" in found.detail


def test_no_git_is_a_problem(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    found = git_finding()
    assert found.status == "problem" and "not on PATH" in found.detail and "install git" in found.fix


def test_an_old_python_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "MIN_PYTHON", (99, 0))
    found = python_finding()
    assert found.status == "problem" and "Python 3.11 or newer" in found.fix


def test_doctor_exits_non_zero_on_a_problem_and_prints_each_fix(
    home: Path, project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(doctor, "probe_all", servers_start)
    state().mkdir(parents=True)
    (state() / "audit").write_text("x", encoding="utf-8")
    assert main(["doctor", "--json"]) == 1
    findings = json.loads(capsys.readouterr().out)
    assert [f["check"] for f in findings if f["status"] == "problem"] == ["audit"]


def test_an_allow_rule_that_can_never_match_a_url_is_a_problem_naming_it(home: Path, project: Path) -> None:
    policy = project.parent / "policy.toml"
    policy.write_text(
        '[policy]\nallow = ["deploy.check_http(url=https://*.Example.com/*)"]\n', encoding="utf-8"
    )
    (found,) = problems(diagnose(project, str(policy), servers_start))
    assert found.check == "policy" and "'deploy.check_http(url=https://*.Example.com/*)'" in found.detail
    assert str(policy) in found.detail and "lower case" in found.fix
