"""Attacks as input; the refusal, and the absence of side effects, as the assertion."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from servers.repo.server import build_server
from tests.helpers import commit, err, first_text, git, make_repo, of_type, ok, settings_for, write
from tests.repo.conftest import Call

pytestmark = pytest.mark.anyio

PATH_TOOLS: list[tuple[str, dict[str, Any]]] = [
    ("read_file", {}),
    ("list_files", {}),
    ("outline", {}),
    ("git_blame", {}),
    ("related_files", {}),
]


def snapshot(tree: Path, skip: Path) -> dict[str, tuple[int, float]]:
    """Every path under tree with size and mtime, except `skip` and onrecord's own state (the
    audit log is written by design): a write anywhere else changes it."""
    state = Path(os.environ["ONRECORD_STATE_DIR"])
    out: dict[str, tuple[int, float]] = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        here = Path(dirpath)
        if any(here == s or s in here.parents for s in (skip, state)):
            dirnames[:] = []
            continue
        filenames = [f for f in filenames]
        dirnames[:] = [d for d in dirnames if here / d != state]
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            info = p.lstat()
            out[str(p)] = (info.st_size, info.st_mtime)
    return out


async def refused_everywhere(call: Call, path: str, *, reason: str) -> None:
    for tool, extra in PATH_TOOLS:
        text = err(await call(tool, path=path, **extra))
        assert reason in text, f"{tool}({path!r}): {text}"
        assert "TOP SECRET" not in text


@pytest.mark.parametrize(
    "path",
    ["../outside/secret.txt", "pkg/../../outside/secret.txt", "..", "../outside"],
)
async def test_traversal_is_refused(call: Call, path: str, repo: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path, repo)
    await refused_everywhere(call, path, reason="outside the workspace root")
    assert snapshot(tmp_path, repo) == before


async def test_absolute_paths_elsewhere_and_prefix_siblings_are_refused(
    call: Call, repo: Path, tmp_path: Path
) -> None:
    sibling = tmp_path / (repo.name + "_evil")
    sibling.mkdir()
    (sibling / "secret.txt").write_text("TOP SECRET in a prefix sibling\n", encoding="utf-8")
    for path in [
        str(tmp_path / "outside" / "secret.txt"),
        str(sibling / "secret.txt"),
        f"../{sibling.name}/secret.txt",
        "/etc/passwd",
    ]:
        await refused_everywhere(call, path, reason="outside the workspace root")
    inside = ok(await call("read_file", path=str(repo / "README.md")))
    assert inside["path"] == "README.md"


@pytest.mark.parametrize(
    "path", ["README.md'", "README.md ", " README.md", '"README.md"', "~/README.md", "~"]
)
async def test_quotes_spaces_and_tilde_are_taken_literally(call: Call, path: str) -> None:
    text = err(await call("read_file", path=path))
    assert "does not exist" in text and repr(path) in text


async def test_nul_bytes_are_refused(call: Call) -> None:
    for tool, _ in PATH_TOOLS:
        assert "NUL" in err(await call(tool, path="README.md\x00.txt"))
    assert "NUL" in err(await call("git_log", path="pkg\x00/x"))


async def test_symlinks_out_of_the_root_are_refused_and_links_inside_are_followed(
    call: Call, repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    (repo / "leak_file").symlink_to(outside / "secret.txt")
    (repo / "leak_dir").symlink_to(outside, target_is_directory=True)
    (repo / "dangling").symlink_to(repo / "no-such-file")
    (repo / "chain1").symlink_to(repo / "chain2")
    (repo / "chain2").symlink_to(outside / "secret.txt")
    (repo / "inside_link").symlink_to(repo / "README.md")
    for path in ["leak_file", "leak_dir/secret.txt", "chain1"]:
        await refused_everywhere(call, path, reason="points outside the workspace root")
    assert "points outside" in err(await call("list_files", path="leak_dir"))
    assert "dangling symlink" in err(await call("read_file", path="dangling"))
    followed = ok(await call("read_file", path="inside_link"))
    assert followed["path"] == "README.md" and "# sample" in followed["content"]
    listing = ok(await call("list_files"))
    assert "TOP SECRET" not in str(listing)


async def test_fifos_devices_and_dev_zero_are_refused_promptly(call: Call, repo: Path) -> None:
    os.mkfifo(repo / "pipe")
    (repo / "zero").symlink_to("/dev/zero")
    cases = {"pipe": "a FIFO", "zero": "points outside"}
    if os.geteuid() == 0:
        os.mknod(repo / "null_dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        cases["null_dev"] = "a device"
    with anyio.fail_after(5):
        for path, reason in cases.items():
            for tool in ("read_file", "outline"):
                assert reason in err(await call(tool, path=path)), (tool, path)


INJECTIONS = ["--output=/tmp/onrecord-pwned", "--exec=touch /tmp/onrecord-pwned", "-p", "--help", "-o/tmp/x"]


@pytest.mark.parametrize("attack", INJECTIONS)
async def test_option_injection_through_every_revision_path_and_date_is_refused(
    call: Call, attack: str, repo: Path, tmp_path: Path
) -> None:
    before = snapshot(tmp_path, repo / ".git")
    attempts = [
        ("read_file", {"path": "README.md", "ref": attack}),
        ("git_log", {"rev": attack}),
        ("git_log", {"since": attack}),
        ("git_log", {"until": attack}),
        ("git_diff", {"base": attack}),
        ("git_diff", {"target": attack}),
        ("git_show", {"rev": attack}),
        ("git_show", {"rev": "HEAD", "path": attack}),
        ("git_blame", {"path": "README.md", "rev": attack}),
    ]
    for tool, args in attempts:
        result = await call(tool, **args)
        assert result.is_error, (tool, args)
    # As a path, an option-looking string is only ever a (missing) file name.
    for tool, args in [
        ("git_log", {"path": attack}),
        ("git_diff", {"path": attack}),
        ("git_blame", {"path": attack}),
    ]:
        result = await call(tool, **args)
        if not result.is_error:
            assert (
                result.structured_content[
                    "commits" if tool == "git_log" else "files" if tool == "git_diff" else "ranges"
                ]
                == []
            )
    # Free-text filters are passed as one --opt=value token: searched for, never parsed as options.
    assert ok(await call("git_log", grep=attack))["commits"] == []
    assert ok(await call("git_log", author=attack))["commits"] == []
    assert not Path("/tmp/onrecord-pwned").exists()
    assert snapshot(tmp_path, repo / ".git") == before


async def test_a_ref_literally_named_like_an_option_is_still_refused(
    call: Call, repo: Path, tmp_path: Path
) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    heads = repo / ".git" / "refs" / "heads"
    for name in ["--output=evil.txt", "--format=evil", "-p"]:
        (heads / name).write_text(head + "\n", encoding="utf-8")
    for name in ["--output=evil.txt", "--format=evil", "-p"]:
        for tool, args in [
            ("git_diff", {"base": name}),
            ("git_show", {"rev": name}),
            ("git_log", {"rev": name}),
            ("read_file", {"path": "README.md", "ref": name}),
        ]:
            assert "starts with '-'" in err(await call(tool, **args))
    assert not (repo / "evil.txt").exists() and not Path("evil.txt").exists()
    assert ok(await call("git_log", rev="main", limit=1))["commits"][0]["sha"] == head


def booby_trap(repo: Path, marker: Path) -> None:
    """A repository whose own config and attributes name programs that would leave a marker."""
    touch = f"sh -c 'echo $0 >> {marker}'"
    with (repo / ".git" / "config").open("a", encoding="utf-8") as f:
        f.write(
            f"""
[core]
    fsmonitor = {touch} fsmonitor
    pager = {touch} pager
    sshCommand = {touch} ssh
    hooksPath = .git/evil-hooks
[diff]
    external = {touch} external
[diff "evil"]
    textconv = {touch} textconv
    command = {touch} command
[filter "evil"]
    clean = {touch} clean
    smudge = {touch} smudge
    process = {touch} process
    required = true
[pager]
    log = {touch} pagerlog
[credential]
    helper = {touch} credential
[include]
    path = {repo / "included.cfg"}
"""
        )
    (repo / "included.cfg").write_text(f'[diff "inc"]\n    textconv = {touch} included\n', encoding="utf-8")
    hooks = repo / ".git" / "evil-hooks"
    hooks.mkdir()
    for hook in [
        "pre-commit",
        "post-checkout",
        "post-index-change",
        "fsmonitor-watchman",
        "reference-transaction",
    ]:
        (hooks / hook).write_text(f"#!/bin/sh\necho hook-{hook} >> {marker}\n", encoding="utf-8")
        (hooks / hook).chmod(0o755)
        (repo / ".git" / "hooks" / hook).write_text(
            f"#!/bin/sh\necho hook-{hook} >> {marker}\n", encoding="utf-8"
        )
        (repo / ".git" / "hooks" / hook).chmod(0o755)


async def test_a_booby_trapped_repository_runs_none_of_its_programs(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    repo = make_repo(tmp_path / "trap", {"a.txt": "one\ntwo\n", "b.py": "def f():\n    return 1\n"})
    # Attributes are committed before the trap is armed: committing through the trap would fire it here.
    commit(
        repo,
        {".gitattributes": "*.txt diff=evil filter=evil\n*.py diff=inc\n", "a.txt": "one\nTWO\n"},
        "attrs",
    )
    booby_trap(repo, marker)
    write(repo, {"a.txt": "one\nTWO\nthree\n", "b.py": "def f():\n    return 2\n"})
    server = build_server(settings_for(repo, tmp=tmp_path))
    calls: list[tuple[str, dict[str, Any]]] = [
        ("overview", {}),
        ("list_files", {}),
        ("read_file", {"path": "a.txt"}),
        ("read_file", {"path": "a.txt", "ref": "HEAD"}),
        ("search", {"query": "two"}),
        ("outline", {"path": "b.py"}),
        ("find_symbol", {"name": "f", "include_references": True}),
        ("git_status", {}),
        ("git_diff", {}),
        ("git_diff", {"base": "HEAD~1", "target": "HEAD"}),
        ("git_diff", {"staged": True}),
        ("git_log", {"path": "a.txt"}),
        ("git_show", {"rev": "HEAD"}),
        ("git_show", {"rev": "HEAD", "path": "a.txt"}),
        ("git_blame", {"path": "a.txt"}),
        ("git_blame", {"path": "a.txt", "rev": "HEAD"}),
        ("related_files", {"path": "a.txt"}),
    ]
    async with Client(server, mode="legacy") as client:
        for tool, args in calls:
            result = await client.call_tool(tool, args)
            assert not result.is_error, (tool, first_text(result))
    assert not marker.exists(), marker.read_text(encoding="utf-8")
    # The diff shows the raw change, not a textconv'd or filtered one.
    async with Client(server, mode="legacy") as client:
        diff = (await client.call_tool("git_diff", {})).structured_content
    assert "+three" in "".join(h["text"] for h in diff["hunks"])


async def test_a_git_file_pointing_outside_the_root_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "outside-ran.txt"
    outside = make_repo(tmp_path / "elsewhere", {"x.txt": "x\n"})
    booby_trap(outside, marker)
    root = tmp_path / "root"
    root.mkdir()
    (root / ".git").write_text(f"gitdir: {outside / '.git'}\n", encoding="utf-8")
    (root / "x.txt").write_text("x\n", encoding="utf-8")
    nested = make_repo(tmp_path / "host", {"README.md": "host\n"})
    (nested / "sub").mkdir()
    (nested / "sub" / ".git").write_text(f"gitdir: {outside / '.git'}\n", encoding="utf-8")
    (nested / "sub" / "y.txt").write_text("y\n", encoding="utf-8")
    before = snapshot(outside, outside / "nothing")

    server = build_server(settings_for(root, tmp=tmp_path))
    async with Client(server, mode="legacy") as client:
        for tool in ("git_status", "git_log", "overview"):
            result = await client.call_tool(tool, {})
            if result.is_error:
                assert "outside the workspace root" in first_text(result)
            else:
                assert (
                    result.structured_content.get("head") is None
                    and "not a git repository" in result.structured_content["note"]
                )
    nested_server = build_server(settings_for(nested, tmp=tmp_path))
    async with Client(nested_server, mode="legacy") as client:
        for tool, args in [
            ("list_files", {"path": "sub"}),
            ("read_file", {"path": "sub/y.txt"}),
            ("git_log", {"path": "sub"}),
            ("git_status", {}),
            ("search", {"query": "y"}),
            ("overview", {}),
        ]:
            await client.call_tool(tool, args)
        assert "sub/.git" not in str((await client.call_tool("list_files", {})).structured_content)
    assert not marker.exists()
    assert snapshot(outside, outside / "nothing") == before


async def test_secrets_files_are_refused_by_the_default_policy_and_the_record_says_so(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "proj",
        {
            "README.md": "docs\n",
            ".env": "STRIPE_KEY=sk_live_4eC39HqLyjWDarjtT1zdp7dc\n",
            ".env.example": "STRIPE_KEY=\n",
            "certs/server.pem": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
            "deploy.md": "clone https://deployer:s3cr3tPa55@git.example.com/app.git\n",
        },
    )
    server = build_server(settings_for(repo, tmp=tmp_path))
    async with Client(server, mode="legacy") as client:
        for path in (".env", "certs/server.pem"):
            result = await client.call_tool("read_file", {"path": path})
            assert result.is_error and "built-in default denies" in first_text(result)
        assert (await client.call_tool("read_file", {"path": ".env.example"})).is_error is False
        listing = (await client.call_tool("list_files", {"include_ignored": True})).structured_content
        assert {e["path"] for e in listing["entries"]} == {"README.md", ".env.example", "deploy.md"}
        assert listing["excluded_by_policy"] == 2
        found = (await client.call_tool("search", {"query": "sk_live"})).structured_content
        assert found["total"] == 0 and found["excluded_by_policy"] == 1
        url = await client.call_tool("read_file", {"path": "deploy.md"})
        assert url.is_error is False
    calls = of_type(server, "call")
    denied = [c for c in calls if c["decision"]["action"] == "deny"]
    assert {c["arguments"]["path"] for c in denied} == {".env", "certs/server.pem"}
    assert all(c["decision"]["source"] == "built-in default denies" for c in denied)
    url_call = next(c for c in calls if c["arguments"].get("path") == "deploy.md")
    url_result = next(r for r in of_type(server, "result") if r["call_id"] == url_call["call_id"])
    assert {"rule": "url_credentials", "where": "result"} in url_result["redactions"]
    audit_text = "".join(
        p.read_text(encoding="utf-8") for p in Path(server.config.audit_path).rglob("*.jsonl")
    )
    for secret in ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "s3cr3tPa55"):
        assert secret not in audit_text


async def test_git_internals_are_not_read_through_file_tools(call: Call, repo: Path) -> None:
    with (repo / ".git" / "config").open("a", encoding="utf-8") as f:
        f.write(
            '[remote "origin"]\n    url = https://bot:ghp_16C7e42F292c6912E7710c838347Ae178B4a@github.com/x/y\n'
        )
    for tool, args in [
        ("read_file", {"path": ".git/config"}),
        ("list_files", {"path": ".git"}),
        ("outline", {"path": ".git/config"}),
        ("read_file", {"path": "pkg/../.git/config"}),
        ("git_show", {"rev": "HEAD", "path": ".git/config"}),
    ]:
        text = err(await call(tool, **args))
        assert "inside .git" in text and "ghp_" not in text
    assert ".git/" not in str(ok(await call("list_files", include_ignored=True)))
    assert ok(await call("search", query="ghp_16C7e42F"))["total"] == 0


async def test_overview_shows_remotes_with_credentials_redacted(call: Call, repo: Path) -> None:
    git(repo, "remote", "add", "origin", "https://deployer:s3cr3tPa55@git.example.com/app.git")
    git(repo, "remote", "add", "mirror", "git@github.com:example/app.git")
    data = ok(await call("overview"))
    assert data["remotes"]["mirror"] == "git@github.com:example/app.git"
    assert (
        "s3cr3tPa55" not in data["remotes"]["origin"]
        and "git.example.com/app.git" in data["remotes"]["origin"]
    )
    server = call.server  # type: ignore[attr-defined]
    audit = "".join(p.read_text(encoding="utf-8") for p in Path(server.config.audit_path).rglob("*.jsonl"))
    assert "s3cr3tPa55" not in audit
