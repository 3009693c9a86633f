"""The README cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clients.cli import parser
from servers import SERVERS, build
from tests.helpers import settings_for

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("server", sorted(SERVERS))
async def test_readme_lists_exactly_the_tools_each_server_has(tmp_path: Path, server: str) -> None:
    block = re.search(rf"<!-- tools:{server} -->(.*?)<!-- /tools:{server} -->", README, re.S)
    assert block, f"README has no tools table for {server}"
    documented = re.findall(r"^\| `([a-z_]+)` \|", block.group(1), re.M)
    root = tmp_path / "root"
    root.mkdir()
    actual = [t.name for t in await build(server, settings_for(root, tmp=tmp_path)).list_tools()]
    assert sorted(documented) == sorted(actual)


def test_readme_documents_every_cli_command() -> None:
    sub = next(a for a in parser()._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"`onrecord {name}" in README, f"README does not document `onrecord {name}`"


def test_quick_start_is_two_make_targets_that_exist() -> None:
    makefile = (Path(__file__).parent.parent / "Makefile").read_text(encoding="utf-8")
    assert "make demo" in README and "make test" in README
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_readme_settings_example_is_a_valid_settings_file(tmp_path: Path) -> None:
    from common.config import read_settings_file

    example = re.search(r"```toml\n(\[policy\].*?)```", README, re.S)
    assert example
    path = tmp_path / "example.toml"
    path.write_text(example.group(1), encoding="utf-8")
    parsed = read_settings_file(path)
    assert parsed.policy.deny and parsed.audit.fsync == "batch"


def test_the_review_page_section_shows_the_screenshot_the_browser_test_saves() -> None:
    from tests.clients.test_review_browser import README_SCREENSHOT as SCREENSHOT

    section = README.split("## Review page", 1)[1].split("\n## ", 1)[0]
    assert "onrecord review [--port N] [--dir AUDIT_DIR]" in section
    assert f"]({SCREENSHOT.relative_to(Path(__file__).parent.parent).as_posix()})" in section
    assert SCREENSHOT.is_file()
