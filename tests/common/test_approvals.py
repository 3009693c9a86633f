from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from common.approvals import ApprovalError, ApprovalStore, policy_digest
from common.config import load_settings

HERE: dict[str, Any] = {"root": "/srv/a", "server": "repo", "policy": "sha256:1"}


def store_in(tmp_path: Path, ttl_s: int = 900, uses: int = 1) -> ApprovalStore:
    return ApprovalStore(tmp_path / "a", ttl_s=ttl_s, uses=uses)


def test_an_approval_is_bound_to_the_exact_call_and_used_once(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    call, args = "repo.read_file", {"path": "deploy/prod.toml"}
    pending = store.request(call, args, dict(args), "why", **HERE)
    assert store.request(call, args, {}, "why", **HERE).id == pending.id
    assert store.consume(call, args, **HERE) is None  # not granted yet
    store.decide(pending.id, grant=True, by="ada")
    assert store.consume(call, {"path": "deploy/other.toml"}, **HERE) is None
    assert store.consume("repo.search", args, **HERE) is None
    used = store.consume(call, args, **HERE)
    assert used is not None and used.id == pending.id and used.decided_by == "ada"
    assert store.consume(call, args, **HERE) is None


@pytest.mark.parametrize(
    "elsewhere",
    [{"root": "/srv/b"}, {"server": "all"}, {"policy": "sha256:2"}],
    ids=["another root", "another server", "another policy"],
)
def test_a_grant_is_not_consumed_in_another_place(tmp_path: Path, elsewhere: dict[str, str]) -> None:
    store = store_in(tmp_path)
    pending = store.request("repo.read_file", {"path": "x"}, {}, "r", **HERE)
    store.decide(pending.id, grant=True, by="ada")
    assert store.consume("repo.read_file", {"path": "x"}, **{**HERE, **elsewhere}) is None
    assert store.consume("repo.read_file", {"path": "x"}, **HERE) is not None


def test_argument_order_does_not_matter_but_values_do(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    a = store.request("t.x", {"a": 1, "b": 2}, {}, "r", **HERE)
    store.decide(a.id, grant=True, by="ada")
    assert store.consume("t.x", {"a": 1, "b": 3}, **HERE) is None
    assert store.consume("t.x", {"b": 2, "a": 1}, **HERE) is not None


def test_expired_and_declined_approvals_grant_nothing(tmp_path: Path) -> None:
    store = store_in(tmp_path, ttl_s=1)
    declined = store.request("t.x", {"n": 1}, {}, "r", **HERE)
    store.decide(declined.id, grant=False, by="ada")
    assert store.consume("t.x", {"n": 1}, **HERE) is None
    with pytest.raises(ApprovalError, match="is declined, not pending"):
        store.decide(declined.id, grant=True, by="ada")
    late = store.request("t.x", {"n": 2}, {}, "r", **HERE)
    store.decide(late.id, grant=True, by="ada")
    time.sleep(1.1)
    assert store.consume("t.x", {"n": 2}, **HERE) is None
    assert [a.status for a in store.all()] == ["declined", "expired"]


def test_unknown_or_malformed_ids_are_clear_errors(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    with pytest.raises(ApprovalError, match="no approval 'deadbeef'"):
        store.decide("deadbeef", grant=True, by="ada")
    with pytest.raises(ApprovalError, match="not valid"):
        store.decide("../../etc/passwd", grant=True, by="ada")


def test_multi_use_grants_count_down(tmp_path: Path) -> None:
    store = store_in(tmp_path, uses=2)
    a = store.request("t.x", {}, {}, "r", **HERE)
    store.decide(a.id, grant=True, by="ada")
    assert store.consume("t.x", {}, **HERE) is not None
    assert store.consume("t.x", {}, **HERE) is not None
    assert store.consume("t.x", {}, **HERE) is None


def test_the_approving_humans_settings_bound_ttl_and_uses_from_the_grant(tmp_path: Path) -> None:
    pending = store_in(tmp_path, ttl_s=900, uses=5).request("t.x", {}, {}, "r", **HERE)
    granted = store_in(tmp_path, ttl_s=60, uses=1).decide(pending.id, grant=True, by="ada")
    assert granted.uses_left == 1 and 55 <= granted.expires - time.time() <= 60


def test_an_approval_file_from_an_older_version_matches_nothing_and_breaks_nothing(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    (tmp_path / "a").mkdir()
    old = {
        "id": "0ld0ld01",
        "call": "t.x",
        "digest": "0" * 64,
        "arguments": {},
        "reason": "r",
        "created": time.time(),
        "expires": time.time() + 900,
    }
    (tmp_path / "a" / "0ld0ld01.json").write_text(json.dumps(old), encoding="utf-8")
    (tmp_path / "a" / "0ld0ld02.json").write_text(json.dumps({**old, "expires": "soon"}), encoding="utf-8")
    assert [a.id for a in store.pending()] == ["0ld0ld01"] and store.pending()[0].root == ""
    with pytest.raises(ApprovalError, match="older onrecord"):
        store.decide("0ld0ld01", grant=True, by="ada")
    assert store.consume("t.x", {}, **HERE) is None
    assert store.request("t.x", {}, {}, "r", **HERE).id != "0ld0ld01"
    assert store.decide("0ld0ld01", grant=False, by="ada").status == "declined"


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
