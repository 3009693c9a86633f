from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.config import ConfigError, load_settings


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
    s = load_settings(root)
    assert s.default == "deny" and s.scalar_sources["default"] == str(root / "pyproject.toml")
    assert s.call_timeout_s == 30 and s.scalar_sources["call_timeout_s"] == str(user)
    assert [r.text for r in s.rules if r.scope != "builtin"] == ["repo.*"]
    assert s.servers["testing"] == {"python": ".venv/bin/python"}
    assert s.files == [root / "pyproject.toml", user]


def test_dedicated_project_file_wins_over_pyproject(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / ".onrecord.toml").write_text('[policy]\nmode = "shadow"\n', encoding="utf-8")
    (root / "pyproject.toml").write_text('[tool.onrecord.policy]\nmode = "enforce"\n', encoding="utf-8")
    assert load_settings(root).mode == "shadow"


def test_unknown_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / ".onrecord.toml").write_text('[policy]\ndenny = ["repo.*"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(root)
    assert str(root / ".onrecord.toml") in str(info.value) and "'policy.denny'" in str(info.value)


def test_bad_value_says_what_is_allowed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "pyproject.toml").write_text('[tool.onrecord.policy]\nmode = "enforced"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(root)
    message = str(info.value)
    assert (
        "tool.onrecord.policy.mode" in message
        and "'enforce' or 'shadow'" in message
        and "'enforced'" in message
    )


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
    (root / ".onrecord.toml").write_text(
        f'[audit]\ndir = "{tmp_path / "elsewhere"}"\nfsync = "record"\n', encoding="utf-8"
    )
    s = load_settings(root)
    assert s.audit_path == tmp_path / "elsewhere" and s.fsync == "record"
