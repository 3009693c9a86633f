from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from clients.cli import main
from clients.stdio import server_params
from common.approvals import Approval, ApprovalStore
from common.audit import verify_dir
from tests.helpers import first_text, make_repo

pytestmark = pytest.mark.anyio


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "project",
        {"README.md": "# demo\n", "src/app.py": "def main():\n    return 1\n", ".env": "TOKEN=abc\n"},
    )


def state() -> Path:
    return Path(os.environ["ONRECORD_STATE_DIR"])


async def test_serve_over_stdio_answers_a_host_in_the_handshake_era(project: Path) -> None:
    async with Client(server_params("repo", project), mode="legacy") as client:
        assert client.server_info is not None and client.server_info.name == "repo"
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"read_file", "search", "git_log"} <= tools
        result = await client.call_tool("read_file", {"path": "src/app.py"})
        assert result.is_error is False and "def main" in result.structured_content["content"]
    reports = verify_dir(state() / "audit")
    assert len(reports) == 1 and reports[0].ok
    # A clean shutdown (the host closed stdin) closes the file with session_end.
    assert [r["type"] for r in reports[0].records] == ["session_start", "call", "result", "session_end"]
    assert reports[0].records[0]["root"] == str(project) and reports[0].records[0]["head"]


def test_call_prints_the_structured_result(project: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "clients.cli",
            "call",
            "repo",
            "read_file",
            '{"path": "README.md"}',
            "--root",
            str(project),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        env=os.environ.copy(),
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["content"] == "1\t# demo"


def test_call_with_bad_json_is_a_clear_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", "repo", "read_file", "{path: x}", "--root", str(project)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_policy_explain_names_the_rule_and_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / ".onrecord.toml").write_text('[policy]\ndeny = ["repo.*(path=**/.env*)"]\n', encoding="utf-8")
    assert (
        main(["policy", "explain", "repo.read_file", '{"path": ".env"}', "--root", str(project), "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["action"] == "deny" and out["rule"] == "repo.*(path=**/.env*)"
    assert out["source"] == str(project / ".onrecord.toml") and out["tool_known"] is True
    assert main(["policy", "explain", "repo.read_file", '{"path": "README.md"}', "--root", str(project)]) == 0
    assert "ALLOW" in capsys.readouterr().out
    assert main(["policy", "explain", "nosuch.tool", "--root", str(project)]) == 2
    assert "unknown server 'nosuch'" in capsys.readouterr().err


def test_policy_explain_lists_what_the_project_file_was_refused_with_control_characters_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A clone's folder name is as hostile as its files: a newline in it must not forge a line.
    root = make_repo(tmp_path / "clone\n  - forged", {"README.md": "# demo\n"})
    (root / ".onrecord.toml").write_text(
        '[policy]\nmode = "shadow"\nallow = ["repo.*(path=\\u001b[2J\\u202e)"]\n'
        'deny = ["repo.read_file(path=README.md, path!=\\u001b]0;owned\\u0007)"]\n'
        "[approvals]\nuses = 1000\n",
        encoding="utf-8",
    )
    assert main(["policy", "explain", "repo.read_file", '{"path": "README.md"}', "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "DENY" in out and "(shadow mode" not in out
    assert "The project file tried these, and was not allowed" in out
    refused = [line for line in out.splitlines() if line.startswith("  - ")]
    assert len(refused) == 3 and all("clone\\x0a  - forged/.onrecord.toml: " in line for line in refused)
    assert any("policy.mode = 'shadow' ignored" in line for line in refused)
    assert any("policy.allow = 'repo.*(path=" in line for line in refused)
    assert any("approvals.uses = 1000 ignored" in line for line in refused)
    assert not any(c in out for c in "\x1b\x07\u202e"), out
    assert "\\x1b]0;owned\\x07" in out  # the project's deny rule, shown escaped


def pending_in(project: Path, ttl_s: int = 900) -> tuple[ApprovalStore, Approval]:
    """A store as a server rooted at `project` builds it, and one pending approval from it."""
    store = ApprovalStore(state() / "approvals", ttl_s=ttl_s, uses=1)
    where: dict[str, Any] = {"root": str(project), "server": "repo", "policy": "sha256:p"}
    return store, store.request(
        "repo.read_file", {"path": "deploy/x"}, {"path": "deploy/x"}, "ask rule", **where
    )


def test_approve_grants_a_pending_approval_and_records_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, pending = pending_in(project)
    assert main(["approvals"]) == 0
    listed = capsys.readouterr().out
    assert pending.id in listed and "repo.read_file" in listed and str(project) in listed
    assert main(["approve", pending.id]) == 0
    assert "granted: repo.read_file" in (said := capsys.readouterr().out) and f"in {project}" in said
    where: dict[str, Any] = {"root": str(project), "server": "repo", "policy": "sha256:p"}
    assert store.consume("repo.read_file", {"path": "deploy/x"}, **where) is not None
    approvals = [r for rep in verify_dir(state() / "audit") for r in rep.records if r["type"] == "approval"]
    assert approvals and approvals[0]["approval_id"] == pending.id and approvals[0]["action"] == "granted"
    assert approvals[0]["root"] == str(project) and approvals[0]["server"] == "repo"
    assert main(["approve", pending.id]) == 2
    assert "not pending" in capsys.readouterr().err
    assert main(["approvals", "--all"]) == 0
    assert str(project) in (listed := capsys.readouterr().out) and "used" in listed


def test_approve_takes_the_ttl_from_the_humans_settings_counted_from_the_grant(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user = Path(os.environ["XDG_CONFIG_HOME"]) / "onrecord" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("[approvals]\nttl_s = 60\n", encoding="utf-8")
    store, pending = pending_in(project, ttl_s=900)
    assert main(["approve", pending.id]) == 0
    assert "within 1 min" in capsys.readouterr().out
    assert 55 <= store.get(pending.id).expires - time.time() <= 60


def test_approve_with_a_policy_file_takes_its_ttl(project: Path, tmp_path: Path) -> None:
    policy = tmp_path / "team.toml"
    policy.write_text("[approvals]\nttl_s = 120\n", encoding="utf-8")
    store, pending = pending_in(project)
    assert main(["approve", pending.id, "--policy", str(policy)]) == 0
    assert 115 <= store.get(pending.id).expires - time.time() <= 120


async def test_audit_commands_show_and_verify_and_fail_on_tampering(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Client(server_params("repo", project), mode="legacy") as client:
        await client.call_tool("overview", {})
        await client.call_tool("read_file", {"path": "../../etc/passwd"})
    audit = state() / "audit"
    assert main(["audit", "sessions", "--dir", str(audit)]) == 0
    listing = capsys.readouterr().out
    assert "repo" in listing and "ok" in listing
    session = next(audit.glob("*/*.jsonl"))
    assert main(["audit", "show", session.stem, "--dir", str(audit)]) == 0
    shown = capsys.readouterr().out
    assert "repo.overview" in shown and "tool_error" in shown and "chain verified" in shown
    why = [line.strip() for line in shown.splitlines() if line.lstrip().startswith("why: ")]
    assert len(why) == 2 and all("repo." in line and "[from " in line for line in why), shown
    assert "ended" in shown  # the session_end record
    assert main(["audit", "tail", "-n", "3", "--dir", str(audit), "--json"]) == 0
    tail = json.loads(capsys.readouterr().out)
    assert [r["type"] for r in tail] == ["call", "result", "session_end"]
    assert {r["session"] for r in tail} == {session.stem}
    assert main(["audit", "tail", "-n", "3", "--dir", str(audit)]) == 0
    shown = capsys.readouterr().out
    assert session.stem in shown and str(project) in shown and "repo.read_file" in shown
    assert main(["audit", "tail", "--only", "errors", "--dir", str(audit), "--json"]) == 0
    errors = json.loads(capsys.readouterr().out)
    assert [(r["type"], r["tool"]) for r in errors] == [
        ("call", "repo.read_file"),
        ("result", "repo.read_file"),
    ]
    assert main(["audit", "tail", "--only", "denied", "--dir", str(audit), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["audit", "verify", "--dir", str(audit)]) == 0
    text = session.read_text(encoding="utf-8").replace("repo.overview", "repo.0verview", 1)
    session.write_text(text, encoding="utf-8")
    assert main(["audit", "verify", "--dir", str(audit)]) == 1
    assert f"{session}:2: error: edited" in capsys.readouterr().out


def test_audit_verify_of_a_missing_or_empty_directory_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "verify", "--dir", str(tmp_path / "nonexistent")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["audit", "verify", "--dir", str(tmp_path / "empty")]) == 2
    assert "holds no audit files" in capsys.readouterr().err
    assert main(["audit", "sessions", "--dir", str(tmp_path / "empty")]) == 0
    assert "no audit sessions yet" in capsys.readouterr().out


def test_demo_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "DENIED" in out and "deny rule 'repo.*(path=**/.env*)'" in out
    assert "[human] approves" in out and "granted" in out
    assert "chain verified" in out and "Secrets in the audit log: none" in out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_serve_all_over_streamable_http_for_a_team(project: Path) -> None:
    import anyio

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clients.cli",
            "serve",
            "all",
            "--root",
            str(project),
            "--transport",
            "http",
            "--port",
            str(port),
        ],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with anyio.fail_after(30):
            while True:
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", port)
                    await stream.aclose()
                    break
                except OSError:
                    await anyio.sleep(0.1)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            result = await client.call_tool("read_file", {"path": ".env"})
            assert result.is_error and "built-in default denies" in first_text(result)
            ok = await client.call_tool("git_log", {"limit": 1})
            assert ok.is_error is False and ok.structured_content["commits"][0]["subject"] == "initial"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    records = [r for rep in verify_dir(state() / "audit") for r in rep.records]
    assert records[0]["server"] == "all"
    assert [r["tool"] for r in records if r["type"] == "call"] == ["repo.read_file", "repo.git_log"]


def test_serve_with_a_bad_policy_file_says_which_file_and_key(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad-policy.toml"
    bad.write_text('[policy]\nmode = "yolo"\n', encoding="utf-8")
    assert main(["serve", "repo", "--root", str(project), "--policy", str(bad)]) == 2
    message = capsys.readouterr().err
    assert str(bad) in message and "'policy.mode'" in message and "'enforce' or 'shadow'" in message
    assert main(["serve", "nosuch", "--root", str(project)]) == 2
    assert (
        "unknown server 'nosuch'; choose one of: repo, testing, data, evals, deploy, all"
        in capsys.readouterr().err
    )


def test_a_typo_in_a_server_table_stops_that_server_naming_the_file_the_key_and_the_keys_allowed(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    human = tmp_path / "policy.toml"
    human.write_text('[testing]\npyton = ".venv/bin/python"\n', encoding="utf-8")
    assert main(["policy", "explain", "testing.lint", "--root", str(project), "--policy", str(human)]) == 2
    message = capsys.readouterr().err
    assert str(human) in message and "unknown key 'testing.pyton'" in message
    assert "[testing] takes: command, python" in message


def test_a_typo_in_the_project_files_server_table_is_refused_and_shown(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / ".onrecord.toml").write_text('[testing]\npyton = ".venv/bin/python"\n', encoding="utf-8")
    assert main(["policy", "explain", "testing.lint", "--root", str(project)]) == 0
    out = capsys.readouterr().out
    assert (
        f"{project / '.onrecord.toml'}: testing.pyton = '.venv/bin/python' ignored: unknown key; "
        "[testing] takes: command, python"
    ) in out


def test_call_with_a_bad_root_or_settings_file_is_one_clear_line(tmp_path: Path) -> None:
    bad_policy = tmp_path / "policy.toml"
    bad_policy.write_text('[policy]\nmode = "loose"\n', encoding="utf-8")
    for extra in (
        ["--root", str(tmp_path / "missing")],
        ["--root", str(tmp_path), "--policy", str(bad_policy)],
    ):
        out = subprocess.run(
            [sys.executable, "-m", "clients.cli", "call", "repo", "overview", *extra],
            capture_output=True,
            text=True,
            encoding="utf-8",
            check=False,
        )
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr and "ExceptionGroup" not in out.stderr
        assert out.stderr.startswith("onrecord: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_call_with_an_unknown_server_tool_or_argument_is_one_clear_line(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", {"README.md": "# demo\n"})
    cases = [
        (["nosuch", "overview"], "unknown server 'nosuch'; choose one of: repo,"),
        (["repo", "nosuch"], "the repo server has no tool 'nosuch'; its tools: find_symbol,"),
        (["repo", "read_file", '{"path": "README.md", "startline": 2}'], "unknown argument(s) 'startline'"),
        (["repo", "read_file", '{"path": "README.md", "start_line": 0}'], "argument 'start_line'"),
    ]
    for argv, said in cases:
        out = subprocess.run(
            [sys.executable, "-m", "clients.cli", "call", *argv, "--root", str(root)],
            capture_output=True,
            text=True,
            encoding="utf-8",
            check=False,
        )
        assert out.returncode == 2 and out.stdout == "", (argv, out)
        assert out.stderr.startswith("onrecord: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert said in out.stderr and "Traceback" not in out.stderr
    # A tool's own error about a good call is its answer, not bad input: printed, exit 1.
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "clients.cli",
            "call",
            "repo",
            "read_file",
            '{"path": "nope.txt"}',
            "--root",
            str(root),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert missing.returncode == 1 and "does not exist" in missing.stdout


def test_output_piped_into_a_reader_that_leaves_early_is_quiet(tmp_path: Path) -> None:
    # Far more output than a pipe holds, so the writer meets the closed pipe.
    project = make_repo(
        tmp_path / "many", {f"pkg/module_with_a_long_name_{i:04d}.py": "" for i in range(1200)}
    )
    shell = f"{sys.executable} -m clients.cli call repo list_files '{{\"limit\": 1000}}' --root {project} | head -c 10"
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, encoding="utf-8", check=False)
    assert out.stdout == '{\n  "trunc' and out.stderr == ""


def test_approvals_marks_a_cell_it_cuts_with_an_ellipsis(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ApprovalStore(state() / "approvals", ttl_s=900, uses=1)
    reason = "ask rule 'repo.read_file(path=secrets/**)' from /home/someone/.config/onrecord/config.toml"
    long_path = "secrets/" + "deeply/nested/" * 6 + "x.yaml"
    store.request(
        "repo.read_file",
        {"path": long_path},
        {"path": long_path},
        reason,
        root=str(project),
        server="repo",
        policy="sha256:p",
        targets={"path": [long_path]},
        shown_targets={"path": [long_path]},
    )
    assert main(["approvals"]) == 0
    listed = capsys.readouterr().out
    # Cut cells end in an ellipsis, so a reader sees the rule and the arguments go on.
    assert reason[:59] + "…" in listed and reason not in listed
    assert json.dumps({"path": long_path})[:59] + "…" in listed
    # What will run is never cut: a human decides on it.
    assert f'path = ["{long_path}"]' in listed
