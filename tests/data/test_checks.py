"""check_dataset: pass / warn / fail with observed values and failing rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.data.conftest import Call, write_parquet
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


@pytest.fixture
def typed(project: Path) -> Path:
    """A dataset whose columns keep their types: integer, boolean, decimal, date, text, big id."""
    write_parquet(
        project / "data" / "typed.parquet",
        "SELECT * FROM (VALUES "
        "(5, true, 0::DECIMAL(18,3), DATE '2024-01-01', 'paid', 9007199254740993::BIGINT), "
        "(7, false, 1.5::DECIMAL(18,3), DATE '2024-01-02', 'paid', 9007199254740993::BIGINT), "
        "(7, NULL, 1.5::DECIMAL(18,3), NULL, 'lost', 9007199254740992::BIGINT)"
        ") t(x, b, d, day, status, big)",
    )
    return project


def statuses(data: dict[str, Any]) -> list[str]:
    return [r["status"] for r in data["results"]]


async def test_in_set_compares_values_in_the_column_type(call: Call, typed: Path) -> None:
    def in_set(column: str, values: list[Any]) -> dict[str, Any]:
        return {"type": "in_set", "column": column, "values": values}

    passing = [
        in_set("x", [5, 7]),
        in_set("x", [5.0, "7"]),  # a whole float and numeric text are the numbers they read as
        in_set("b", [True, False]),
        in_set("d", [0, 1.5]),  # 1.5 matches 1.500
        in_set("d", ["0.000", "1.50"]),
        in_set("day", ["2024-01-01", "2024-01-02"]),
        in_set("big", [9007199254740993, 9007199254740992]),  # ints stay ints, never floats
    ]
    data = ok(await call("check_dataset", path="data/typed.parquet", checks=passing))
    assert statuses(data) == ["pass"] * len(passing), data["results"]
    assert all("[" not in str(r["check"]["values"][0]) for r in data["results"])
    assert data["results"][-1]["check"]["values"] == [9007199254740993, 9007199254740992]

    failing = [
        in_set("x", [5]),
        in_set("b", [True]),
        in_set("d", [0, 1.4999]),  # DECIMAL(18,3) cannot hold 1.4999: it matches nothing, not 1.500
        in_set("big", [9007199254740992]),
    ]
    data = ok(await call("check_dataset", path="data/typed.parquet", checks=failing))
    assert [r["observed"] for r in data["results"]] == [2, 1, 2, 2], data["results"]
    assert data["results"][0]["failing_rows"][0]["x"] == 7
    assert "1.4999" in data["results"][2]["message"] and "DECIMAL(18,3)" in data["results"][2]["message"]


async def test_in_set_values_the_column_cannot_hold_match_no_row_and_are_named(
    call: Call, typed: Path
) -> None:
    check = {"type": "in_set", "column": "x", "values": [5, 7.5, "abc", True, "7.4"]}
    data = ok(await call("check_dataset", path="data/typed.parquet", checks=[check]))
    (result,) = data["results"]
    assert result["status"] == "fail" and result["observed"] == 2  # the 7s: 7.5 and '7.4' are not 7
    assert (
        '3 of the set\'s values cannot be read as INTEGER and match no row: 7.5, "abc", "7.4"'
        in (result["message"])
    )


async def test_numbers_in_contract_value_sets_match_typed_columns(call: Call, typed: Path) -> None:
    (typed / "soda.yml").write_text(
        "checks for typed:\n  - invalid_count(x) = 0:\n      valid values: [5, 7]\n"
        "  - invalid_count(b) = 0:\n      valid values: [true, false]\n",
        encoding="utf-8",
    )
    odcs = {
        "apiVersion": "v3.0.2",
        "kind": "DataContract",
        "schema": [
            {
                "name": "typed",
                "properties": [
                    {
                        "name": "d",
                        "quality": [
                            {"metric": "invalidValues", "arguments": {"validValues": [0, 1.5]}, "mustBe": 0}
                        ],
                    }
                ],
            }
        ],
    }
    (typed / "odcs.json").write_text(json.dumps(odcs), encoding="utf-8")
    for contract in ("soda.yml", "odcs.json"):
        data = ok(await call("check_dataset", path="data/typed.parquet", contract=contract))
        assert data["status"] == "pass", data["results"]


async def test_a_fractional_bound_is_not_rounded_to_an_integer_column(call: Call, typed: Path) -> None:
    checks = [
        {"type": "between", "column": "x", "min": 5.4},  # 5 < 5.4
        {"type": "between", "column": "x", "max": "6.5"},  # 7 > 6.5
        {"type": "between", "column": "big", "min": 9007199254740993},  # an int bound stays exact
        {"type": "between", "column": "d", "min": 0.0005, "max": 1.5},
        {"type": "between", "column": "x", "min": 4.5, "max": 7.5},
    ]
    data = ok(await call("check_dataset", path="data/typed.parquet", checks=checks))
    assert [r["observed"] for r in data["results"]] == [1, 2, 1, 1, 0], data["results"]
    assert data["results"][0]["failing_rows"][0]["x"] == 5


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (
            {"type": "between", "column": "amount", "minimum": 1000},
            "unknown key 'minimum' in a between check; its keys are type, column, min, max, severity",
        ),
        ({"type": "not_null", "column": "id", "max_failure": 3}, "unknown key 'max_failure'"),
        ({"type": "between", "column": "amount"}, "a between check needs `min`, `max` or both"),
        ({"type": "row_count"}, "a row_count check needs `min`, `max` or both"),
        ({"type": "between", "column": "amount", "min": 10, "max": 1}, "`min` 10 is greater than `max` 1"),
    ],
)
async def test_a_check_with_an_unknown_key_or_no_bound_is_an_error(
    call: Call, orders: Path, check: dict[str, Any], expected: str
) -> None:
    assert expected in err(await call("check_dataset", path="data/orders.csv", checks=[check]))
    (orders / "c.json").write_text(json.dumps({"checks": [check]}), encoding="utf-8")
    message = err(await call("check_dataset", path="data/orders.csv", contract="c.json"))
    assert "contract 'c.json'" in message and expected in message


async def test_contract_rule_keys_outside_the_subset_are_reported_never_ignored(
    call: Call, orders: Path
) -> None:
    (orders / "orders.odcs.yaml").write_text(
        """\
apiVersion: v3.0.2
kind: DataContract
schema:
  - name: orders
    properties:
      - name: amount
        logicalTypeOptions:
          minimum: -10
          exclusiveMaximum: 5
      - name: status
        quality:
          - metric: nullValues
            mustBeLessThan: 5
            mustBeGreaterThan: 1
          - metric: nullValues
            mustBe: 0
            unit: percent
          - metric: missingValues
            arguments:
              missingValues: [null, '']
            mustBe: 0
          - metric: nullValues
            description: no status may be missing
            dimension: completeness
            mustBeLessOrEqualTo: 1
    quality:
      - metric: rowCount
        mustBeGreaterThan: 1
        mustNotBe: 3
""",
        encoding="utf-8",
    )
    data = ok(await call("check_dataset", path="data/orders.csv", contract="orders.odcs.yaml"))
    got = [(r["check"]["type"], r["status"]) for r in data["results"]]
    assert got == [
        ("between", "pass"),
        ("not_evaluated", "warn"),  # exclusiveMaximum
        ("not_evaluated", "warn"),  # mustBeGreaterThan
        ("not_evaluated", "warn"),  # unit: percent
        ("not_evaluated", "warn"),  # missingValues arguments
        ("not_null", "pass"),  # descriptive keys change nothing
        ("not_evaluated", "warn"),  # mustNotBe
    ]
    reasons = [r["check"].get("reason", "") for r in data["results"]]
    assert "'exclusiveMaximum' is outside the supported subset" in reasons[1]
    assert "'mustBeGreaterThan'" in reasons[2] and "'percent'" in reasons[3]
    assert "arguments 'missingValues'" in reasons[4] and "'mustNotBe'" in reasons[6]

    (orders / "checks.yml").write_text(
        "checks for orders:\n"
        "  - missing_count(status) = 0:\n      missing values: [lost]\n"
        "  - invalid_count(status) < 5:\n      valid values: [paid, lost]\n      valid regex: '^p'\n"
        "  - invalid_count(status) < 5:\n      name: statuses\n      valid values: [paid, lost]\n",
        encoding="utf-8",
    )
    data = ok(await call("check_dataset", path="data/orders.csv", contract="checks.yml"))
    got = [(r["check"]["type"], r["status"]) for r in data["results"]]
    assert got == [("not_evaluated", "warn"), ("not_evaluated", "warn"), ("in_set", "pass")]
    assert "'missing values' is outside" in data["results"][0]["check"]["reason"]
    assert "'valid regex' is outside" in data["results"][1]["check"]["reason"]


async def test_column_names_with_dollar_digits_are_checked_like_any_other(call: Call, project: Path) -> None:
    (project / "data" / "dollars.csv").write_text("a$1,x$9,b\n1,5,z\n2,50,y\n", encoding="utf-8")
    checks = [
        {"type": "between", "column": "x$9", "max": 10},
        {"type": "in_set", "column": "a$1", "values": [1]},
        {"type": "matches", "column": "b", "pattern": "z"},
        {"type": "between", "column": "a$1", "min": 0, "max": 1},
    ]
    data = ok(await call("check_dataset", path="data/dollars.csv", checks=checks))
    for result in data["results"]:
        assert result["status"] == "fail" and result["observed"] == 1, result
        assert result["failing_rows"] == [{"a$1": 2, "x$9": 50, "b": "y"}]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.json", '{"checks": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        ("shallow.json", '{"checks": ' + "[" * 70 + "]" * 70 + "}"),  # parses, then measured
        ("deep.yaml", "checks: " + "[" * 5000 + "]" * 5000 + "\n"),
        ("block.yaml", "checks:\n" + "- " * 5000 + "x\n"),
        ("deep.toml", "checks = " + "[" * 5000 + "]" * 5000 + "\n"),
    ],
)
async def test_a_contract_nested_too_deeply_is_a_clear_error(
    call: Call, orders: Path, name: str, text: str
) -> None:
    (orders / name).write_text(text, encoding="utf-8")
    message = err(await call("check_dataset", path="data/orders.csv", contract=name))
    assert f"contract {name!r} nests deeper than 64 levels" in message


async def test_a_contract_inside_git_is_refused(call: Call, orders: Path) -> None:
    assert (orders / ".git" / "config").is_file()
    (orders / "git-link.json").symlink_to(orders / ".git" / "config")
    for path in (".git/config", "git-link.json"):
        message = err(await call("check_dataset", path="data/orders.csv", contract=path))
        assert "inside .git" in message and "not a contract" in message


async def test_unquoted_dates_in_a_yaml_contract_are_read_as_the_column_type(call: Call, typed: Path) -> None:
    (typed / "typed.odcs.yaml").write_text(
        """\
apiVersion: v3.0.2
kind: DataContract
schema:
  - name: typed
    properties:
      - name: day
        logicalTypeOptions:
          minimum: 2024-01-02
        quality:
          - metric: invalidValues
            arguments:
              validValues: [2024-01-01, 2024-01-02]
            mustBe: 0
""",
        encoding="utf-8",
    )
    data = ok(await call("check_dataset", path="data/typed.parquet", contract="typed.odcs.yaml"))
    got = [(r["check"]["type"], r["status"], r["observed"]) for r in data["results"]]
    assert got == [("between", "fail", 1), ("in_set", "pass", 0)]
    assert data["results"][0]["failing_rows"][0]["day"] == "2024-01-01"
