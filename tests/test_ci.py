"""The conformance run in CI stays wired up and its list of exceptions stays explained."""

from __future__ import annotations

import re
from pathlib import Path

CI = Path(__file__).parent.parent / ".ci"


def test_ci_runs_the_conformance_suite_after_the_tests() -> None:
    run = (CI / "run").read_text(encoding="utf-8")
    assert run.index("make test") < run.index(".ci/conformance")


def test_the_conformance_suite_version_is_pinned() -> None:
    script = (CI / "conformance").read_text(encoding="utf-8")
    assert re.search(r"^CONFORMANCE_VERSION=\d+\.\d+\.\d+ ", script, re.M)


def test_every_scenario_the_baseline_lists_says_why() -> None:
    text = (CI / "conformance-baseline.yml").read_text(encoding="utf-8")
    entries = re.findall(r"^  - ([a-z0-9-]+)(.*)$", text, re.M)
    assert entries
    unexplained = [name for name, rest in entries if not re.match(r" # \S", rest)]
    assert unexplained == []
    names = [name for name, _ in entries]
    assert len(names) == len(set(names))
