from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.config import DEFAULT_DENIES, ConfigError, load_settings, server_section
from servers.testing.settings import TestingSettings


def test_scopes_merge_highest_first_and_record_where_each_setting_came_from(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    user = tmp_path / "config" / "onrecord" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('[policy]\ndefault = "ask"\n[limits]\ncall_timeout_s = 30\n', encoding="utf-8")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.onrecord.policy]\ndefault = "deny"\nallow = ["repo.*"]\n'
        "[tool.onrecord.testing]\npython = '.venv/bin/python'\n",
        encoding="utf-8",
    )
    s = load_settings(root, user_file=user, sections=("testing",))
    # The project tightens the default (ask -> deny): taken. Its allow rule is not.
    assert s.default == "deny" and s.scalar_sources["default"] == str(root / "pyproject.toml")
    assert s.call_timeout_s == 30 and s.scalar_sources["call_timeout_s"] == str(user)
    assert [r.text for r in s.rules if r.scope != "builtin"] == []
    assert any("policy.allow = 'repo.*' ignored" in r for r in s.refused)
    # A project's server table waits for its server's model, which says what a project may set.
    assert s.project_servers["testing"] == {"python": ".venv/bin/python"} and "testing" not in s.servers
    assert server_section(s, "testing", TestingSettings).python == ".venv/bin/python"
    assert s.origin("testing", "python") == (str(root / "pyproject.toml"), "project")
    assert s.files == [user, root / "pyproject.toml"]


def test_dedicated_project_file_wins_over_pyproject(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / ".onrecord.toml").write_text('[policy]\ndefault = "deny"\n', encoding="utf-8")
    (root / "pyproject.toml").write_text('[tool.onrecord.policy]\ndefault = "ask"\n', encoding="utf-8")
    assert load_settings(root).default == "deny"


def test_unknown_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    human = tmp_path / "user.toml"
    human.write_text('[policy]\ndenny = ["repo.*"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(root, user_file=human)
    assert str(human) in str(info.value) and "'policy.denny'" in str(info.value)
    # In the project's file the same mistake is refused and recorded; the rest of the file applies.
    (root / ".onrecord.toml").write_text(
        '[policy]\ndenny = ["repo.*"]\ndeny = ["repo.git_log"]\n', encoding="utf-8"
    )
    s = load_settings(root)
    assert s.refused == [f"{root / '.onrecord.toml'}: policy.denny = ['repo.*'] ignored: unknown key"]
    assert ("deny", "repo.git_log") in [(r.action, r.text) for r in s.rules]


def test_bad_value_says_what_is_allowed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    human = tmp_path / "user.toml"
    human.write_text('[policy]\nmode = "enforced"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(root, user_file=human)
    message = str(info.value)
    assert "policy.mode" in message and "'enforce' or 'shadow'" in message and "'enforced'" in message
    (root / "pyproject.toml").write_text('[tool.onrecord.policy]\nmode = "enforced"\n', encoding="utf-8")
    (refused,) = load_settings(root).refused
    assert refused.startswith(f"{root / 'pyproject.toml'}: tool.onrecord.policy.mode = 'enforced' ignored: ")
    assert "'enforce' or 'shadow'" in refused


def test_invalid_toml_and_missing_policy_file_are_clear_errors(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(root, policy_file=bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(root, policy_file=tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is not a directory"):
        load_settings(tmp_path / "nope")


def test_state_dir_follows_the_environment(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    s = load_settings(root)
    assert s.audit_path == Path(os.environ["ONRECORD_STATE_DIR"]) / "audit"
    user = tmp_path / "user.toml"
    user.write_text(f'[audit]\ndir = "{tmp_path / "elsewhere"}"\nfsync = "record"\n', encoding="utf-8")
    s = load_settings(root, user_file=user)
    assert s.audit_path == tmp_path / "elsewhere" and s.fsync == "record"


HUMAN = """
[policy]
default = "ask"
allow = ["repo.*"]
[policy.annotations]
destructive = "ask"
[approvals]
ttl_s = 600
uses = 1
[limits]
call_timeout_s = 120
"""


@pytest.mark.parametrize(
    ("project", "refused_key"),
    [
        ('[policy]\nmode = "shadow"\n', "policy.mode"),
        ("[policy]\ndefault_denies = false\n", "policy.default_denies"),
        ('[policy]\nallow = ["testing.*"]\n', "policy.allow"),
        ('[policy]\ndefault = "allow"\n', "policy.default"),
        ('[policy.annotations]\ndestructive = "allow"\n', "policy.annotations.destructive"),
        ("[policy]\nlock = true\n", "policy.lock"),
        ("[approvals]\nuses = 1000\n", "approvals.uses"),
        ("[approvals]\nttl_s = 604800\n", "approvals.ttl_s"),
        ('[audit]\ndir = "/tmp/elsewhere"\n', "audit.dir"),
        ('[audit]\nfsync = "off"\n', "audit.fsync"),
        ("[audit]\nbatch_ms = 60000\n", "audit.batch_ms"),
        ("[limits]\ncall_timeout_s = 86400\n", "limits.call_timeout_s"),
        ("[limits]\nmax_result_tokens = 100000\n", "limits.max_result_tokens"),
    ],
)
def test_a_project_file_cannot_loosen_the_humans_settings(
    tmp_path: Path, project: str, refused_key: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    user = tmp_path / "user.toml"
    user.write_text(HUMAN, encoding="utf-8")
    baseline = load_settings(root, user_file=user)
    (root / ".onrecord.toml").write_text(project, encoding="utf-8")
    s = load_settings(root, user_file=user)
    for name in (
        "mode",
        "default",
        "annotation_defaults",
        "approval_uses",
        "approval_ttl_s",
        "audit_path",
        "fsync",
        "batch_ms",
        "call_timeout_s",
        "max_result_tokens",
    ):
        assert getattr(s, name) == getattr(baseline, name), name
    assert [r.text for r in s.rules] == [r.text for r in baseline.rules]
    assert any(r.startswith(f"{root / '.onrecord.toml'}: {refused_key} = ") for r in s.refused), s.refused


def test_a_pyproject_table_is_a_project_file_too_and_is_refused_the_same_way(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[tool.onrecord.policy]\nmode = "shadow"\nallow = ["repo.*"]\n', encoding="utf-8"
    )
    s = load_settings(root)
    assert s.mode == "enforce" and [r for r in s.rules if r.action == "allow"] == []
    assert s.refused == [
        f"{root / 'pyproject.toml'}: policy.allow = 'repo.*' ignored: only the humans' settings may allow",
        f"{root / 'pyproject.toml'}: policy.mode = 'shadow' ignored: a project file may only tighten the policy",
    ]


def test_a_project_file_may_tighten(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    user = tmp_path / "user.toml"
    user.write_text(HUMAN, encoding="utf-8")
    (root / ".onrecord.toml").write_text(
        '[policy]\ndeny = ["repo.*(path=secrets/**)"]\nask = ["repo.git_log"]\ndefault = "deny"\n'
        '[policy.annotations]\nread_only = "ask"\n[approvals]\nuses = 1\nttl_s = 60\n'
        "[limits]\ncall_timeout_s = 30\nmax_result_tokens = 5000\n",
        encoding="utf-8",
    )
    s = load_settings(root, user_file=user)
    assert s.refused == []
    assert ("deny", "repo.*(path=secrets/**)") in [(r.action, r.text) for r in s.rules]
    assert ("ask", "repo.git_log") in [(r.action, r.text) for r in s.rules]
    assert s.default == "deny" and s.annotation_defaults["read_only"] == "ask"
    assert (s.approval_ttl_s, s.call_timeout_s, s.max_result_tokens) == (60, 30, 5000)


def test_a_project_file_may_bring_back_the_default_denies_the_humans_dropped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    user = tmp_path / "user.toml"
    user.write_text("[policy]\ndefault_denies = false\n", encoding="utf-8")
    assert [r for r in load_settings(root, user_file=user).rules if r.scope == "builtin"] == []
    (root / ".onrecord.toml").write_text("[policy]\ndefault_denies = true\n", encoding="utf-8")
    s = load_settings(root, user_file=user)
    assert [r.text for r in s.rules if r.scope == "builtin"] == list(DEFAULT_DENIES)
    assert s.refused == []


def test_what_a_project_file_tried_is_in_the_session_record_and_policy_explain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from clients.cli import main
    from servers.repo.server import build_server

    root = tmp_path / "root"
    root.mkdir()
    (root / ".onrecord.toml").write_text('[policy]\nmode = "shadow"\nallow = ["repo.*"]\n', encoding="utf-8")
    server = build_server(load_settings(root, sections=("repo",)))
    start = server.audit.session()
    assert any("policy.mode = 'shadow' ignored" in r for r in start["project_refused"])
    assert main(["policy", "explain", "repo.read_file", '{"path": "a"}', "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "project file" in out and "policy.mode = 'shadow' ignored" in out and "policy.allow" in out


def test_an_unknown_key_in_a_server_table_names_the_file_and_the_key(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    human = tmp_path / "user.toml"
    human.write_text('[testing]\npyton = ".venv/bin/python"\n', encoding="utf-8")
    s = load_settings(root, user_file=human, sections=("testing",))
    with pytest.raises(ConfigError) as info:
        server_section(s, "testing", TestingSettings)
    assert str(human) in str(info.value) and "'testing.pyton'" in str(info.value)
    assert "python" in str(info.value)  # says what is allowed
    human.write_text("[testing]\ncommand = 'uv run'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        server_section(
            load_settings(root, user_file=human, sections=("testing",)), "testing", TestingSettings
        )
    assert "'testing.command'" in str(info.value) and "'uv run'" in str(info.value)
    human.write_text("[tesitng]\npython = 'x'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown key 'tesitng'"):
        load_settings(root, user_file=human, sections=("testing",))


def test_the_same_mistakes_in_the_project_file_are_refused_and_the_server_still_starts(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    project = root / ".onrecord.toml"
    project.write_text(
        "[tesitng]\npython = 'x'\n[testing]\npyton = 'x'\ncommand = 'uv run'\n", encoding="utf-8"
    )
    s = load_settings(root, sections=("testing",))
    assert server_section(s, "testing", TestingSettings) == TestingSettings()
    assert (
        s.refused[0]
        == f"{project}: tesitng = {{'python': 'x'}} ignored: unknown key; see README 'Settings' for the keys allowed"
    )
    assert (
        s.refused[1]
        == f"{project}: testing.pyton = 'x' ignored: unknown key; [testing] takes: command, python"
    )
    assert s.refused[2].startswith(
        f"{project}: testing.command = 'uv run' ignored: command: Input should be a valid list"
    )
    assert len(s.refused) == 3
