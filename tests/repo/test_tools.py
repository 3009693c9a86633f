"""Every repo tool through the in-memory Client: happy path, pagination, truncation, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import commit, err, git, ok, write
from tests.repo.conftest import Call

pytestmark = pytest.mark.anyio


async def test_tools_are_read_only_with_schemas_and_descriptions(call: Call) -> None:
    tools = await call.server.list_tools()  # type: ignore[attr-defined]
    assert len(tools) == 12
    for tool in tools:
        assert tool.description and tool.output_schema is not None
        ann = tool.annotations
        # destructive and idempotent hints mean something only for tools that write (MCP spec).
        assert ann is not None and ann.read_only_hint is True and ann.open_world_hint is False
        assert ann.destructive_hint is None and ann.idempotent_hint is None
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"


async def test_overview_gives_the_lie_of_the_land(call: Call, repo: Path) -> None:
    write(repo, {"scratch.txt": "new\n"})
    data = ok(await call("overview"))
    assert data["branch"] == "main" and len(data["head"]) == 40
    assert data["dirty"] == {"staged": 0, "unstaged": 0, "untracked": 1}
    assert "python" in data["languages"] and "typescript" in data["languages"]
    assert {e["path"] for e in data["top_level"]} >= {"README.md", "pkg", "tests", "web"}
    assert data["key_files"]["readme"] == ["README.md"] and "pyproject.toml" in data["key_files"]["manifests"]
    assert data["tests"]["test_files"] == 1 and data["tests"]["directories"] == ["tests"]
    assert [c["subject"] for c in data["last_commits"]] == [
        "touch core and test",
        "tweak helper",
        "initial commit",
    ]


async def test_list_files_honours_gitignore_and_paginates(call: Call, repo: Path) -> None:
    write(repo, {"build/out.bin": "x", "debug.log": "x", "notes.txt": "untracked but not ignored"})
    first = ok(await call("list_files", limit=3))
    assert first["returned"] == 3 and first["truncated"] and first["next_cursor"]
    paths = [e["path"] for e in first["entries"]]
    cursor = first["next_cursor"]
    while cursor:
        page = ok(await call("list_files", limit=3, cursor=cursor))
        paths += [e["path"] for e in page["entries"]]
        cursor = page["next_cursor"]
    assert "notes.txt" in paths and "build/out.bin" not in paths and "debug.log" not in paths
    assert len(paths) == len(set(paths)) == first["total"]
    everything = ok(await call("list_files", include_ignored=True, limit=1000))
    assert {"build/out.bin", "debug.log"} <= {e["path"] for e in everything["entries"]}


async def test_list_files_depth_pattern_and_sizes(call: Call) -> None:
    shallow = ok(await call("list_files", max_depth=1))
    kinds = {e["path"]: (e["type"], e.get("files")) for e in shallow["entries"]}
    assert kinds["pkg"] == ("dir", 3) and kinds["README.md"][0] == "file"
    py = ok(await call("list_files", path="pkg", pattern="*.py"))
    assert [e["path"] for e in py["entries"]] == ["pkg/__init__.py", "pkg/core.py", "pkg/util.py"]
    assert all(e["size"] > 0 for e in py["entries"])
    assert "a file, not a directory" in err(await call("list_files", path="README.md"))
    assert "another tool" in err(await call("list_files", cursor="eyJrIjoic2VhcmNoIn0"))
    assert "not one this server issued" in err(await call("list_files", cursor="!!!"))


async def test_read_file_windows_numbers_and_continues(call: Call, repo: Path) -> None:
    write(repo, {"big.txt": "".join(f"line {i}\n" for i in range(1, 30001))})
    data = ok(await call("read_file", path="pkg/core.py", start_line=3, end_line=4))
    assert data["content"] == "3\timport os\n4\t" and data["total_lines"] == 25
    big = ok(await call("read_file", path="big.txt"))
    assert big["truncated"] and big["next_start_line"] == big["end_line"] + 1
    assert big["content"].startswith("1\tline 1\n") and big["total_lines"] == 30000
    more = ok(await call("read_file", path="big.txt", start_line=big["next_start_line"]))
    assert more["content"].startswith(f"{big['next_start_line']}\tline {big['next_start_line']}")
    huge_window = ok(await call("read_file", path="big.txt", start_line=1, end_line=10**9))
    assert huge_window["truncated"] and len(huge_window["content"]) < 80_000


async def test_read_file_at_a_ref_and_binary_and_encodings(call: Call, repo: Path) -> None:
    old = ok(await call("read_file", path="pkg/util.py", ref="HEAD~2"))
    assert "return n * 2\n" in old["content"] + "\n" and "+ 0" not in old["content"]
    write(repo, {"logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200)})
    binary = ok(await call("read_file", path="logo.png"))
    assert binary["binary"] is True and binary["content"] == "" and binary["size"] == 216
    write(repo, {"latin.txt": "caf\xe9 cr\xe8me\n".encode("latin-1"), "esc.txt": "red \x1b[31m text\n"})
    latin = ok(await call("read_file", path="latin.txt"))
    assert latin["encoding"] == "utf-8 (invalid bytes replaced)" and "caf\ufffd" in latin["content"]
    escaped = ok(await call("read_file", path="esc.txt"))
    assert "\\x1b[31m" in escaped["content"] and "\x1b" not in escaped["content"]
    assert "does not exist at ref" in err(await call("read_file", path="nope.py", ref="HEAD"))
    assert "does not exist under the workspace root" in err(await call("read_file", path="nope.py"))
    assert "does not name a commit" in err(await call("read_file", path="README.md", ref="no-such-branch"))


async def test_search_groups_counts_and_paginates(call: Call, repo: Path) -> None:
    write(repo, {f"gen/m{i}.py": "".join(f"needle {j}\n" for j in range(5)) for i in range(10)})
    first = ok(await call("search", query="NEEDLE", limit=7, context_lines=1))
    assert first["total"] == 50 and first["returned"] == 7 and first["truncated"]
    assert first["files"][0]["path"] == "gen/m0.py"
    match = first["files"][0]["matches"][1]
    assert match["line"] == 2 and match["before"] == ["needle 0"] and match["after"] == ["needle 2"]
    seen = sum(len(f["matches"]) for f in first["files"])
    cursor = first["next_cursor"]
    while cursor:
        page = ok(await call("search", query="NEEDLE", limit=7, context_lines=1, cursor=cursor))
        seen += page["returned"]
        cursor = page["next_cursor"]
    assert seen == 50
    sensitive = ok(await call("search", query="NEEDLE", case_sensitive=True))
    assert sensitive["total"] == 0
    regex = ok(await call("search", query=r"def \w+\(self", regex=True))
    assert [(f["path"], m["line"]) for f in regex["files"] for m in f["matches"]] == [
        ("pkg/core.py", 13),
        ("pkg/core.py", 17),
    ]
    globbed = ok(await call("search", query="needle", path_glob="gen/m1.py"))
    assert globbed["total"] == 5
    assert "not a valid regular expression" in err(await call("search", query="(", regex=True))
    assert "query is empty" in err(await call("search", query=""))
    dashed = ok(await call("search", query="--output=x"))
    assert dashed["total"] == 0


async def test_search_refuses_arguments_past_their_bounds(call: Call, repo: Path) -> None:
    write(repo, {"many.txt": "hit\n" * 3000})
    message = err(await call("search", query="hit", limit=10**9, context_lines=10**6))
    assert "'limit'" in message and "500" in message and "'context_lines'" in message and "10" in message
    data = ok(await call("search", query="hit", limit=500, context_lines=10))
    assert data["total"] == 3000 and data["returned"] <= 500 and data["truncated"]
    assert all(len(m["before"]) <= 10 for f in data["files"] for m in f["matches"])


async def test_outline_is_exact_for_python_and_top_level_elsewhere(call: Call) -> None:
    data = ok(await call("outline", path="pkg/core.py"))
    assert data["exact"] is True and data["language"] == "python"
    names = [(s["kind"], s["qualified_name"], s["start_line"], s["end_line"]) for s in data["symbols"]]
    assert names == [
        ("variable", "LIMIT", 7, 7),
        ("class", "Engine", 10, 18),
        ("method", "Engine.start", 13, 15),
        ("method", "Engine.stop", 17, 18),
        ("function", "compute", 21, 23),
    ]
    assert data["symbols"][2]["doc"] == "Start the engine." and data["symbols"][2]["signature"].startswith(
        "def start"
    )
    ts = ok(await call("outline", path="web/app.ts"))
    assert ts["exact"] is False and [s["name"] for s in ts["symbols"]] == ["render", "View"]
    assert ok(await call("outline", path="README.md"))["symbols"] == []


async def test_find_symbol_finds_definitions_and_references(call: Call) -> None:
    data = ok(await call("find_symbol", name="helper", include_references=True))
    assert [(d["path"], d["start_line"], d["kind"]) for d in data["definitions"]] == [
        ("pkg/util.py", 4, "function")
    ]
    assert {(r["path"], r["line"]) for r in data["references"]} == {("pkg/core.py", 5), ("pkg/core.py", 15)}
    method = ok(await call("find_symbol", name="Engine.start"))
    assert [d["qualified_name"] for d in method["definitions"]] == ["Engine.start"]
    assert ok(await call("find_symbol", name="Engine", kind="function"))["definitions"] == []
    assert "not an identifier" in err(await call("find_symbol", name="--help"))


async def test_git_status_reports_staged_unstaged_untracked(call: Call, repo: Path) -> None:
    write(repo, {"pkg/util.py": "changed\n", "pkg/core.py": "staged\n", "new.txt": "x\n"})
    git(repo, "add", "pkg/core.py")
    data = ok(await call("git_status"))
    assert [s["path"] for s in data["staged"]] == ["pkg/core.py"] and data["staged"][0]["added"] == 1
    assert [s["path"] for s in data["unstaged"]] == ["pkg/util.py"] and data["unstaged"][0]["deleted"] == 5
    assert data["untracked"] == ["new.txt"] and data["branch"] == "main"


async def test_git_diff_summarises_then_budgets_hunks(call: Call, repo: Path) -> None:
    write(repo, {f"d/f{i}.txt": "".join(f"row {j}\n" for j in range(400)) for i in range(12)})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "add data")
    write(repo, {f"d/f{i}.txt": "".join(f"ROW {j} changed\n" for j in range(400)) for i in range(12)})
    data = ok(await call("git_diff"))
    assert len(data["files"]) == 12 and all(f["added"] == 400 for f in data["files"])
    assert data["truncated"] and data["files_left_out"] and data["next_cursor"]
    assert "path=<file>" in data["note"]
    nxt = ok(await call("git_diff", cursor=data["next_cursor"]))
    assert nxt["hunks"] and nxt["hunks"][0]["path"] in data["files_left_out"]
    one = ok(await call("git_diff", path="d/f0.txt", context_lines=50))
    assert {h["path"] for h in one["hunks"]} == {"d/f0.txt"}
    between = ok(await call("git_diff", base="HEAD~2", target="HEAD~1"))
    assert [f["path"] for f in between["files"]] == ["pkg/core.py", "tests/test_core.py"]
    git(repo, "add", "d/f1.txt")
    staged = ok(await call("git_diff", staged=True))
    assert [f["path"] for f in staged["files"]] == ["d/f1.txt"]


async def test_git_log_filters_and_paginates(call: Call, repo: Path) -> None:
    for i in range(5):
        commit(repo, {f"log/{i}.txt": f"{i}\n"}, f"log entry {i}")
    first = ok(await call("git_log", limit=3))
    assert [c["subject"] for c in first["commits"]] == ["log entry 4", "log entry 3", "log entry 2"]
    assert first["commits"][0]["files"] == [
        {"path": "log/4.txt", "status": "added", "old_path": None, "added": 1, "deleted": 0}
    ]
    rest = ok(await call("git_log", limit=3, cursor=first["next_cursor"]))
    assert [c["subject"] for c in rest["commits"]] == ["log entry 1", "log entry 0", "touch core and test"]
    by_path = ok(await call("git_log", path="pkg/util.py"))
    assert [c["subject"] for c in by_path["commits"]] == ["tweak helper", "initial commit"]
    assert ok(await call("git_log", grep="ENTRY 3"))["commits"][0]["subject"] == "log entry 3"
    assert ok(await call("git_log", author="author@example"))["returned"] == 8
    assert ok(await call("git_log", until="2001-01-01"))["commits"] == []
    assert ok(await call("git_log", rev="HEAD~6", limit=10))["commits"][0]["subject"] == "tweak helper"
    assert "is not a date" in err(await call("git_log", since="yesterday; rm -rf /"))


async def test_git_show_commit_and_file_at_rev(call: Call) -> None:
    data = ok(await call("git_show", rev="HEAD~1"))
    assert data["message"] == "tweak helper" and len(data["parents"]) == 1
    assert data["files"][0]["path"] == "pkg/util.py" and "+    return n * 2 + 0" in data["hunks"][0]["text"]
    root_commit = ok(await call("git_show", rev="HEAD~2"))
    assert root_commit["parents"] == [] and len(root_commit["files"]) == len([1 for _ in range(8)])
    file_at = ok(await call("git_show", rev="HEAD~2", path="pkg/util.py"))
    assert file_at["file"]["content"].endswith("return n * 2")


async def test_git_blame_gives_commit_metadata_once(call: Call) -> None:
    data = ok(await call("git_blame", path="pkg/util.py"))
    assert data["returned"] == 5 and not data["truncated"]
    shas = {r["sha"] for r in data["ranges"]}
    assert shas == set(data["commits"]) and len(shas) == 2
    summaries = {c["summary"] for c in data["commits"].values()}
    assert summaries == {"initial commit", "tweak helper"}
    last = data["ranges"][-1]
    assert last["end_line"] == 5 and data["commits"][last["sha"]]["summary"] == "tweak helper"
    window = ok(await call("git_blame", path="pkg/core.py", start_line=2, end_line=3))
    assert window["ranges"][0]["start_line"] == 2 and window["ranges"][-1]["end_line"] == 3
    past = ok(await call("git_blame", path="pkg/util.py", start_line=3, end_line=10**6))
    assert past["ranges"][-1]["end_line"] == 5
    assert "past the end" in err(await call("git_blame", path="pkg/util.py", start_line=99))


async def test_related_files_explains_each_relation(call: Call) -> None:
    data = ok(await call("related_files", path="pkg/core.py"))
    by_path = {r["path"]: r["reasons"] for r in data["related"]}
    assert "imported by it" in by_path["pkg/util.py"]
    assert any("imports it" in reason for reason in by_path["tests/test_core.py"])
    assert any("changed together" in reason for reason in by_path["tests/test_core.py"])
    util = ok(await call("related_files", path="pkg/util.py"))
    assert any(r["path"] == "pkg/core.py" and "imports it" in r["reasons"] for r in util["related"])


async def test_git_status_and_diff_report_renames_and_non_utf8_paths_and_messages(
    call: Call, repo: Path
) -> None:
    git(repo, "mv", "pkg/util.py", "pkg/helpers.py")
    data = ok(await call("git_status"))
    assert [s["path"] for s in data["staged"]] == ["pkg/helpers.py"]
    assert data["staged"][0]["status"] == "renamed" and data["staged"][0]["old_path"] == "pkg/util.py"
    import os
    import subprocess

    from tests.helpers import GIT_IDENTITY

    env = {**os.environ, **GIT_IDENTITY, "GIT_CONFIG_GLOBAL": "/dev/null"}
    subprocess.run([b"git", b"commit", b"-q", b"-m", b"caf\xe9: rename"], cwd=repo, env=env, check=True)
    commit(repo, {"data.bin": b"\x00\x01\xff" * 10, "notes.txt": "na\xefve\n".encode("latin-1")}, "add bytes")
    renamed = ok(await call("git_show", rev="HEAD~1"))
    assert [(f["status"], f["old_path"], f["path"]) for f in renamed["files"]] == [
        ("renamed", "pkg/util.py", "pkg/helpers.py")
    ]
    logged = ok(await call("git_log", limit=1, rev="HEAD~1"))
    assert [(f["status"], f["old_path"]) for f in logged["commits"][0]["files"]] == [
        ("renamed", "pkg/util.py")
    ]
    shown = ok(await call("git_show", rev="HEAD"))
    assert {(f["path"], f["status"]) for f in shown["files"]} == {
        ("data.bin", "added"),
        ("notes.txt", "added"),
    }
    binary = next(f for f in shown["files"] if f["path"] == "data.bin")
    assert binary["added"] is None and binary["deleted"] is None
    assert "\ufffd" in "".join(h["text"] for h in shown["hunks"] if h["path"] == "notes.txt")
    log = ok(await call("git_log", limit=2))
    # A non-UTF-8 message never fails a call: git re-encodes it or the byte is replaced.
    assert log["commits"][1]["subject"] in ("caf\xe9: rename", "caf\ufffd: rename")


async def test_every_git_tool_states_what_happened_to_each_file(call: Call, repo: Path) -> None:
    import os

    git(repo, "rm", "-q", "pkg/util.py")
    (repo / "web" / "app.ts").write_text("changed\n", encoding="utf-8")
    os.chmod(repo / "tests" / "test_core.py", 0o744)  # a mode change: the executable bit
    (repo / "README.md").unlink()
    (repo / "README.md").symlink_to("pyproject.toml")
    status = ok(await call("git_status"))
    assert [(s["path"], s["status"]) for s in status["staged"]] == [("pkg/util.py", "deleted")]
    unstaged = {s["path"]: s["status"] for s in status["unstaged"]}
    assert unstaged == {
        "README.md": "type_changed",
        "tests/test_core.py": "modified",
        "web/app.ts": "modified",
    }
    staged_diff = ok(await call("git_diff", staged=True))
    assert [(f["path"], f["status"], f["deleted"]) for f in staged_diff["files"]] == [
        ("pkg/util.py", "deleted", 5)
    ]
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "facts")
    shown = ok(await call("git_show", rev="HEAD"))
    assert {f["path"]: f["status"] for f in shown["files"]} == {
        "README.md": "type_changed",
        "pkg/util.py": "deleted",
        "tests/test_core.py": "modified",
        "web/app.ts": "modified",
    }
    logged = ok(await call("git_log", limit=1))
    assert {f["path"]: f["status"] for f in logged["commits"][0]["files"]} == {
        f["path"]: f["status"] for f in shown["files"]
    }


async def test_untracked_folders_collapse_detached_heads_are_named_and_counts_are_exact(
    call: Call, repo: Path
) -> None:
    venv = repo / ".venv" / "lib"
    venv.mkdir(parents=True)
    for i in range(2000):
        (venv / f"m{i}.py").write_text("", encoding="utf-8")
    (venv / "big.py").write_text("x = 1\n" * 1000, encoding="utf-8")
    (repo / "loose.txt").write_text("x\n", encoding="utf-8")
    before = ok(await call("overview"))["languages"]
    (venv / "big.py").unlink()
    status = ok(await call("git_status"))
    assert status["untracked"] == [".venv/", "loose.txt"]
    assert status["untracked_folders"] == {".venv/": 2000}
    assert status["counts"]["untracked_files"] == 2001 and status["truncated"] is False
    overview = ok(await call("overview"))
    tracked = len([n for n in git(repo, "ls-files", "-z").split("\0") if n])
    assert overview["files_tracked"] == tracked and overview["dirty"]["untracked"] == 2001
    # Languages count tracked files: an untracked .venv/ adds nothing to python's bytes.
    assert overview["exact"] is True and overview["languages"] == before
    assert overview["branch"] == "main" and overview["detached"] is False
    git(repo, "checkout", "-q", "--detach", "HEAD~1")
    detached = ok(await call("git_status"))
    assert detached["branch"] is None and detached["detached"] is True
    assert ok(await call("overview"))["detached"] is True


async def test_outline_of_a_file_that_does_not_parse_says_so_and_is_not_exact(call: Call, repo: Path) -> None:
    (repo / "broken.py").write_text("def good():\n    return 1\n\nclass Half(:\n    pass\n", encoding="utf-8")
    data = ok(await call("outline", path="broken.py"))
    assert data["exact"] is False and "does not parse as Python" in data["note"] and "line 4" in data["note"]
    assert [s["name"] for s in data["symbols"]] == ["good", "Half"]  # found by pattern


async def test_blame_of_an_untracked_file_is_a_clear_error_not_gits_text(call: Call, repo: Path) -> None:
    (repo / "scratch.py").write_text("x = 1\n", encoding="utf-8")
    text = err(await call("git_blame", path="scratch.py"))
    assert "has no history in HEAD" in text and "use read_file" in text and "fatal" not in text


async def test_a_line_range_that_ends_before_it_starts_is_an_error(call: Call) -> None:
    for tool in ("read_file", "git_blame"):
        text = err(await call(tool, path="pkg/core.py", start_line=10, end_line=5))
        assert "end_line 5 is before start_line 10" in text
        assert "argument 'start_line'" in err(await call(tool, path="pkg/core.py", start_line=0))


async def test_the_users_global_excludes_file_is_honoured(
    call: Call, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".config" / "git" / "ignore").write_text("*.swp\n.idea/\n", encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    (repo / "notes.swp").write_text("x\n", encoding="utf-8")
    (repo / ".idea").mkdir()
    (repo / ".idea" / "workspace.xml").write_text("<x/>\n", encoding="utf-8")
    (repo / "real.py").write_text("x = 1\n", encoding="utf-8")
    from servers.repo.server import build_server
    from tests.helpers import settings_for

    server = build_server(settings_for(repo, tmp=tmp_path))
    from mcp import Client

    async with Client(server, mode="legacy") as client:
        status = (await client.call_tool("git_status", {})).structured_content
    assert status is not None and status["untracked"] == ["real.py"]


async def test_core_excludes_file_in_the_users_gitconfig_is_honoured_and_nothing_else_of_it_runs(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    marker = tmp_path / "ran"
    hook = tmp_path / "monitor.sh"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n", encoding="utf-8")
    hook.chmod(0o755)
    (home / "my-ignores").write_text("*.log\nbuild/\n", encoding="utf-8")
    (home / ".gitconfig").write_text(
        f"[core]\n\texcludesFile = ~/my-ignores\n\tfsmonitor = {hook}\n[status]\n\tshowUntrackedFiles = no\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    (repo / "debug.log").write_text("x\n", encoding="utf-8")
    (repo / "build").mkdir()
    (repo / "build" / "out.o").write_bytes(b"\x00")
    (repo / "kept.py").write_text("x = 1\n", encoding="utf-8")
    from mcp import Client

    from servers.repo.server import build_server
    from tests.helpers import settings_for

    async with Client(build_server(settings_for(repo, tmp=tmp_path)), mode="legacy") as client:
        status = (await client.call_tool("git_status", {})).structured_content
        overview = (await client.call_tool("overview", {})).structured_content
    # The excludes file applies; the rest of the user's config (a monitor program, hiding
    # untracked files) does not reach the tools.
    assert status is not None and status["untracked"] == ["kept.py"]
    assert overview is not None and overview["dirty"]["untracked"] == 1
    assert not marker.exists()
