from __future__ import annotations

import time
from pathlib import Path

import pytest

from common.approvals import ApprovalError, ApprovalStore


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
