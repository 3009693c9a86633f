"""check_dataset: pass / warn / fail with observed values and failing rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.data.conftest import Call
from tests.helpers import err, ok

pytestmark = pytest.mark.anyio

ORDERS = (
    "id,status,amount,email,placed\n"
    "1,paid,10,a@example.com,2024-01-01\n"
    "2,paid,-5,b@example.com,2024-01-02\n"
    "2,lost,7,not-an-email,2024-01-03\n"
    "4,,3,d@example.com,2024-01-04\n"
)


@pytest.fixture
def orders(project: Path) -> Path:
    (project / "data" / "orders.csv").write_text(ORDERS, encoding="utf-8")
    return project


def by_type(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["check"]["type"] + ":" + str(r["check"].get("column")): r for r in data["results"]}


async def test_each_check_reports_status_observed_value_and_failing_rows(call: Call, orders: Path) -> None:
    checks = [
        {"type": "not_null", "column": "status"},
        {"type": "unique", "column": "id"},
        {"type": "between", "column": "amount", "min": 0, "max": 100},
        {"type": "in_set", "column": "status", "values": ["paid", "refunded"], "severity": "warn"},
        {"type": "matches", "column": "email", "pattern": r"[^@\s]+@[^@\s]+\.[a-z]+"},
        {"type": "row_count", "min": 1, "max": 10},
        {"type": "column_exists", "column": "placed"},
        {"type": "between", "column": "placed", "min": "2024-01-01", "max": "2024-12-31"},
    ]
    data = ok(await call("check_dataset", path="data/orders.csv", checks=checks))
    results = by_type(data)
    assert results["not_null:status"]["status"] == "fail" and results["not_null:status"]["observed"] == 1
    assert results["not_null:status"]["failing_rows"][0]["id"] == 4
    assert results["unique:id"]["observed"] == 1 and {
        r["id"] for r in results["unique:id"]["failing_rows"]
    } == {2}
    between = next(r for r in data["results"] if r["check"].get("column") == "amount")
    assert (
        between["status"] == "fail"
        and between["observed"] == 1
        and between["failing_rows"][0]["amount"] == -5
    )
    assert results["in_set:status"]["status"] == "warn" and results["in_set:status"]["observed"] == 1
    assert results["matches:email"]["failing_rows"][0]["email"] == "not-an-email"
    assert results["row_count:None"]["status"] == "pass" and results["row_count:None"]["observed"] == 4
    assert results["column_exists:placed"]["status"] == "pass"
    dates = [
        r for r in data["results"] if r["check"].get("column") == "placed" and r["check"]["type"] == "between"
    ]
    assert dates[0]["status"] == "pass"
    assert data["status"] == "fail" and data["failed"] == 4 and data["warned"] == 1 and data["passed"] == 3


async def test_a_check_on_a_missing_column_fails_never_passes(call: Call, orders: Path) -> None:
    data = ok(
        await call(
            "check_dataset",
            path="data/orders.csv",
            checks=[{"type": "not_null", "column": "ghost"}, {"type": "column_exists", "column": "ghost"}],
        )
    )
    assert [r["status"] for r in data["results"]] == ["fail", "fail"]
    assert "no column 'ghost'" in data["results"][0]["message"]


async def test_tolerated_failures_and_freshness(call: Call, orders: Path) -> None:
    data = ok(
        await call(
            "check_dataset",
            path="data/orders.csv",
            checks=[
                {"type": "not_null", "column": "status", "max_failures": 1},
                {"type": "freshness", "column": "placed", "max_age_hours": 24},
            ],
        )
    )
    assert data["results"][0]["status"] == "pass"
    assert data["results"][1]["status"] == "fail" and data["results"][1]["observed"] > 24 * 300


async def test_checks_come_from_a_contract_file(call: Call, orders: Path) -> None:
    (orders / "contract.json").write_text(
        json.dumps({"checks": [{"type": "unique", "column": "id"}, {"type": "row_count", "min": 10}]}),
        encoding="utf-8",
    )
    (orders / "contract.toml").write_text('[[checks]]\ntype = "not_null"\ncolumn = "id"\n', encoding="utf-8")
    data = ok(await call("check_dataset", path="data/orders.csv", contract="contract.json"))
    assert [r["status"] for r in data["results"]] == ["fail", "fail"]
    data = ok(await call("check_dataset", path="data/orders.csv", contract="contract.toml"))
    assert data["status"] == "pass"
    (orders / "bad.json").write_text('{"checks": [{"type": "nope"}]}', encoding="utf-8")
    assert "contract 'bad.json'" in err(
        await call("check_dataset", path="data/orders.csv", contract="bad.json")
    )


async def test_no_checks_is_an_error(call: Call, orders: Path) -> None:
    assert "no checks given" in err(await call("check_dataset", path="data/orders.csv"))


ODCS = """\
apiVersion: v3.0.2
kind: DataContract
id: orders-contract
schema:
  - name: customers
    properties:
      - name: id
        required: true
  - name: orders
    physicalName: orders
    properties:
      - name: id
        primaryKey: true
      - name: status
        quality:
          - metric: invalidValues
            arguments:
              validValues: [paid, refunded]
            mustBe: 0
          - metric: nullValues
            mustBeLessOrEqualTo: 1
      - name: amount
        logicalTypeOptions:
          minimum: 0
      - name: email
        logicalTypeOptions:
          pattern: "[^@]+@[^@]+"
    quality:
      - metric: rowCount
        mustBeGreaterThan: 2
      - type: sql
        query: SELECT count(*) FROM orders WHERE amount > 1000
        mustBe: 0
"""

SODA = """\
checks for orders:
  - row_count between 1 and 3
  - missing_count(status) = 0
  - duplicate_count(id) < 2
  - invalid_count(status) = 0:
      valid values: [paid]
  - min(amount) >= 0
  - freshness(placed) < 1d
  - anomaly detection for row_count
  - schema:
      fail:
        when required column missing: [id, ghost]
"""


async def test_odcs_and_soda_contracts_become_checks_and_unsupported_rules_warn(
    call: Call, orders: Path
) -> None:
    (orders / "orders.odcs.yaml").write_text(ODCS, encoding="utf-8")
    data = ok(await call("check_dataset", path="data/orders.csv", contract="orders.odcs.yaml"))
    got = [(r["check"]["type"], r["check"].get("column"), r["status"]) for r in data["results"]]
    assert got == [
        ("not_null", "id", "pass"),
        ("unique", "id", "fail"),  # id 2 twice
        ("in_set", "status", "fail"),  # 'lost'
        ("not_null", "status", "pass"),  # one missing, one tolerated
        ("between", "amount", "fail"),  # -5
        ("matches", "email", "fail"),  # not-an-email
        ("row_count", None, "pass"),  # 4 rows > 2
        ("not_evaluated", None, "warn"),  # an SQL rule is reported, never passed
    ]
    assert "type" in data["results"][-1]["check"]["rule"] and data["results"][-1]["message"].startswith(
        "not evaluated"
    )

    (orders / "checks.yml").write_text(SODA, encoding="utf-8")
    data = ok(await call("check_dataset", path="data/orders.csv", contract="checks.yml"))
    got = [(r["check"]["type"], r["check"].get("column"), r["status"]) for r in data["results"]]
    assert got == [
        ("row_count", None, "fail"),  # 4 rows, not between 1 and 3
        ("not_null", "status", "fail"),
        ("unique", "id", "pass"),  # one duplicate (id 2), and `< 2` tolerates one
        ("in_set", "status", "fail"),
        ("between", "amount", "fail"),
        ("freshness", "placed", "fail"),
        ("not_evaluated", None, "warn"),
        ("column_exists", "id", "pass"),
        ("column_exists", "ghost", "fail"),
    ]


async def test_a_contract_that_is_hostile_or_names_another_dataset_is_a_clear_error(
    call: Call, orders: Path
) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b]\n"
    (orders / "bomb.yaml").write_text(bomb, encoding="utf-8")
    assert "anchors and aliases are not accepted" in err(
        await call("check_dataset", path="data/orders.csv", contract="bomb.yaml")
    )
    (orders / "tag.yaml").write_text(
        "checks: !!python/object/apply:os.system ['touch pwned']\n", encoding="utf-8"
    )
    assert "not valid YAML" in err(await call("check_dataset", path="data/orders.csv", contract="tag.yaml"))
    assert not (orders / "pwned").exists()
    other = ODCS.replace("- name: customers", "- name: invoices").replace(
        "name: orders\n    physicalName: orders", "name: refunds"
    )
    (orders / "other.yaml").write_text(other, encoding="utf-8")
    assert "none is named 'orders'" in err(
        await call("check_dataset", path="data/orders.csv", contract="other.yaml")
    )
