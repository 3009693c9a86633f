"""Git layouts: hostile redirections refused; linked worktrees, submodules and roots inside a
repository work, each seeing only its own files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from servers.repo.server import build_server
from tests.helpers import commit, git, make_repo, settings_for

pytestmark = pytest.mark.anyio


def text_of(result: CallToolResult) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content) + str(result.structured_content)


async def calls(root: Path, tmp_path: Path, todo: list[tuple[str, dict[str, Any]]]) -> list[CallToolResult]:
    server = build_server(settings_for(root, tmp=tmp_path))
    async with Client(server, mode="legacy") as c:
        return [await c.call_tool(tool, arguments) for tool, arguments in todo]


@pytest.fixture
def other(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "other", {"plan.txt": "OTHER-REPO-PLAN\n"}, "other repo's secret history")


HISTORY = [
    ("read_file", {"path": "plan.txt", "ref": "HEAD"}),
    ("git_log", {}),
    ("git_show", {"rev": "HEAD"}),
]


async def test_a_commondir_naming_another_repository_is_refused(tmp_path: Path, other: Path) -> None:
    root = make_repo(tmp_path / "proj", {"README.md": "mine\n"})
    (root / ".git" / "commondir").write_text(str(other / ".git") + "\n", encoding="utf-8")
    for result in await calls(root, tmp_path, HISTORY):
        assert result.is_error and "commondir" in text_of(result), text_of(result)
        assert "OTHER-REPO-PLAN" not in text_of(result) and "secret history" not in text_of(result)


async def test_alternates_borrowing_another_repositorys_objects_are_refused(
    tmp_path: Path, other: Path
) -> None:
    root = make_repo(tmp_path / "proj", {"README.md": "mine\n"})
    alternates = root / ".git" / "objects" / "info" / "alternates"
    alternates.parent.mkdir(parents=True, exist_ok=True)
    alternates.write_text(str(other / ".git" / "objects") + "\n", encoding="utf-8")
    for result in await calls(root, tmp_path, HISTORY):
        assert result.is_error and "alternates" in text_of(result)
        assert "OTHER-REPO-PLAN" not in text_of(result)


async def test_a_git_file_pointing_elsewhere_without_a_back_link_is_refused(
    tmp_path: Path, other: Path
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / ".git").write_text(f"gitdir: {other / '.git'}\n", encoding="utf-8")
    for result in await calls(root, tmp_path, HISTORY):
        assert result.is_error and "back-link" in text_of(result)
        assert "OTHER-REPO-PLAN" not in text_of(result)


async def test_a_linked_worktree_works_and_shows_its_own_branch(tmp_path: Path) -> None:
    main = make_repo(tmp_path / "main", {"plan.txt": "v1\n"})
    git(main, "worktree", "add", "-q", "-b", "feature", str(tmp_path / "wt"))
    wt = tmp_path / "wt"
    commit(wt, {"plan.txt": "v2 on feature\n"}, "feature work")
    status, read, log = await calls(
        wt,
        tmp_path,
        [("git_status", {}), ("read_file", {"path": "plan.txt", "ref": "HEAD"}), ("git_log", {})],
    )
    assert not status.is_error and status.structured_content["branch"] == "feature"  # type: ignore[index]
    assert "v2 on feature" in text_of(read)
    assert [c["subject"] for c in log.structured_content["commits"]] == ["feature work", "initial"]  # type: ignore[index]


async def test_a_submodule_works(tmp_path: Path) -> None:
    library = make_repo(tmp_path / "library", {"lib.py": "VALUE = 1\n"})
    parent = make_repo(tmp_path / "parent", {"README.md": "parent\n"})
    git(parent, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library), "vendor/lib")
    sub = parent / "vendor" / "lib"
    assert (sub / ".git").is_file()
    read, log = await calls(
        sub, tmp_path, [("read_file", {"path": "lib.py", "ref": "HEAD"}), ("git_log", {})]
    )
    assert "VALUE = 1" in text_of(read)
    assert not log.is_error and log.structured_content["commits"][0]["subject"] == "initial"  # type: ignore[index]


async def test_a_root_inside_a_repository_sees_only_its_own_paths(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "src/app.py": "def main():\n    return 1\n",
            "other/secret.txt": "OUTSIDE-THE-ROOT\n",
            "README.md": "x\n",
        },
    )
    commit(repo, {"src/app.py": "def main():\n    return 2\n", "other/secret.txt": "OUTSIDE-2\n"}, "both")
    (repo / "src" / "app.py").write_text("def main():\n    return 3\n", encoding="utf-8")
    (repo / "other" / "secret.txt").write_text("OUTSIDE-3\n", encoding="utf-8")
    (repo / "src" / "new.py").write_text("NEW = 1\n", encoding="utf-8")
    root = repo / "src"
    results = await calls(
        root,
        tmp_path,
        [
            ("git_status", {}),
            ("git_diff", {}),
            ("git_diff", {"base": "HEAD~1", "target": "HEAD"}),
            ("git_log", {}),
            ("git_show", {"rev": "HEAD"}),
            ("read_file", {"path": "app.py", "ref": "HEAD~1"}),
            ("git_blame", {"path": "app.py"}),
            ("search", {"query": "TSIDE"}),
            ("list_files", {}),
            ("overview", {}),
        ],
    )
    for result in results:
        assert not result.is_error, text_of(result)
        assert "OUTSIDE" not in text_of(result) and "other/" not in text_of(result), text_of(result)[:300]
    status, diff, diff2, log, show, read = (r.structured_content for r in results[:6])
    assert status is not None and {s["path"] for s in status["unstaged"]} == {"app.py"}
    assert status["untracked"] == ["new.py"]
    assert diff is not None and [h["path"] for h in diff["hunks"]] == ["app.py"]
    assert diff2 is not None and [f["path"] for f in diff2["files"]] == ["app.py"]
    assert log is not None and [f["path"] for c in log["commits"] for f in c["files"]] == ["app.py", "app.py"]
    assert show is not None and [f["path"] for f in show["files"]] == ["app.py"]
    assert read is not None and "return 1" in read["content"]
