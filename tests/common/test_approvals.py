from __future__ import annotations

import time
from pathlib import Path

import pytest

from common.approvals import ApprovalError, ApprovalStore, policy_digest
from common.config import load_settings


def test_an_approval_is_bound_to_the_exact_call_and_used_once(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path / "a")
    pending = store.request(
        "repo.read_file", {"path": "deploy/prod.toml"}, {"path": "deploy/prod.toml"}, "why"
    )
    assert store.request("repo.read_file", {"path": "deploy/prod.toml"}, {}, "why").id == pending.id
    assert store.consume("repo.read_file", {"path": "deploy/prod.toml"}) is None  # not granted yet
    store.decide(pending.id, grant=True, by="ada")
    assert store.consume("repo.read_file", {"path": "deploy/other.toml"}) is None
    assert store.consume("repo.search", {"path": "deploy/prod.toml"}) is None
    used = store.consume("repo.read_file", {"path": "deploy/prod.toml"})
    assert used is not None and used.id == pending.id and used.decided_by == "ada"
    assert store.consume("repo.read_file", {"path": "deploy/prod.toml"}) is None


def test_argument_order_does_not_matter_but_values_do(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path / "a")
    a = store.request("t.x", {"a": 1, "b": 2}, {}, "r")
    store.decide(a.id, grant=True, by="ada")
    assert store.consume("t.x", {"a": 1, "b": 3}) is None
    assert store.consume("t.x", {"b": 2, "a": 1}) is not None


def test_expired_and_declined_approvals_grant_nothing(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path / "a", ttl_s=1)
    declined = store.request("t.x", {"n": 1}, {}, "r")
    store.decide(declined.id, grant=False, by="ada")
    assert store.consume("t.x", {"n": 1}) is None
    with pytest.raises(ApprovalError, match="is declined, not pending"):
        store.decide(declined.id, grant=True, by="ada")
    late = store.request("t.x", {"n": 2}, {}, "r")
    store.decide(late.id, grant=True, by="ada")
    time.sleep(1.1)
    assert store.consume("t.x", {"n": 2}) is None
    assert [a.status for a in store.all()] == ["declined", "expired"]


def test_unknown_or_malformed_ids_are_clear_errors(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path / "a")
    with pytest.raises(ApprovalError, match="no approval 'deadbeef'"):
        store.decide("deadbeef", grant=True, by="ada")
    with pytest.raises(ApprovalError, match="not valid"):
        store.decide("../../etc/passwd", grant=True, by="ada")


def test_multi_use_grants_count_down(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path / "a", uses=2)
    a = store.request("t.x", {}, {}, "r")
    store.decide(a.id, grant=True, by="ada")
    assert store.consume("t.x", {}) is not None
    assert store.consume("t.x", {}) is not None
    assert store.consume("t.x", {}) is None


def test_a_grant_binds_the_root_and_the_policy(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path / "a")
    pending = store.request("repo.read_file", {"path": "x"}, {}, "r", root="/srv/a", policy="sha256:1")
    store.decide(pending.id, grant=True, by="ada")
    assert store.consume("repo.read_file", {"path": "x"}, root="/srv/b", policy="sha256:1") is None
    assert store.consume("repo.read_file", {"path": "x"}, root="/srv/a", policy="sha256:2") is None
    assert store.consume("repo.read_file", {"path": "x"}, root="/srv/a", policy="sha256:1") is not None


def test_the_approving_humans_settings_bound_ttl_and_uses(tmp_path: Path) -> None:
    asked_by_server = ApprovalStore(tmp_path / "a", ttl_s=900, uses=5)
    pending = asked_by_server.request("t.x", {}, {}, "r")
    granted = ApprovalStore(tmp_path / "a", ttl_s=60, uses=1).decide(pending.id, grant=True, by="ada")
    assert granted.uses_left == 1 and 55 <= granted.expires - time.time() <= 60


@pytest.mark.anyio
async def test_a_grant_for_project_a_is_not_consumed_by_the_same_call_in_project_b(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mcp import Client

    from clients.cli import main
    from servers.repo.server import build_server
    from tests.helpers import first_text, make_repo, settings_for

    policy = '[policy]\nask = ["repo.read_file(path=deploy/**)"]\n'
    user = tmp_path / "config" / "onrecord" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(policy + "[approvals]\nttl_s = 60\n", encoding="utf-8")
    a = make_repo(tmp_path / "a", {"deploy/prod.toml": "A-SECRET\n"})
    b = make_repo(tmp_path / "b", {"deploy/prod.toml": "B-SECRET\n"})
    server_a, server_b = build_server(settings_for(a)), build_server(settings_for(b))
    async with Client(server_a, mode="legacy") as ca, Client(server_b, mode="legacy") as cb:
        asked = await ca.call_tool("read_file", {"path": "deploy/prod.toml"})
        approval_id = first_text(asked).split("pending approval ")[1].split()[0]  # type: ignore[union-attr]
        assert main(["approvals"]) == 0
        listed = capsys.readouterr().out
        assert approval_id in listed and str(a) in listed  # the table names the root
        assert main(["approve", approval_id]) == 0
        said = capsys.readouterr().out
        assert f"in {a}" in said and "within 1 min" in said  # the user's ttl_s = 60
        from_b = await cb.call_tool("read_file", {"path": "deploy/prod.toml"})
        assert from_b.is_error and "B-SECRET" not in first_text(from_b)  # type: ignore[union-attr]
        from_a = await ca.call_tool("read_file", {"path": "deploy/prod.toml"})
        assert not from_a.is_error and "A-SECRET" in first_text(from_a)  # type: ignore[union-attr]


def test_the_policy_digest_changes_with_the_rules_and_not_with_limits(tmp_path: Path) -> None:
    root, policy = tmp_path / "project", tmp_path / "policy.toml"
    root.mkdir()

    def digest(text: str) -> str:
        policy.write_text(text, encoding="utf-8")
        return policy_digest(load_settings(root, policy_file=policy))

    ask = '[policy]\nask = ["repo.read_file(path=deploy/**)"]\n'
    first = digest(ask)
    assert first.startswith("sha256:") and digest(ask) == first
    assert digest(ask + "[limits]\ncall_timeout_s = 5\n") == first
    assert digest(ask.replace('"]', '", "repo.search"]')) != first
