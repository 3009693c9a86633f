from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from clients import review
from common.audit import AuditLog, iter_records
from common.errors import OnrecordError
from tests.helpers import git


def logs(directory: Path, count: int, records: int) -> list[AuditLog]:
    """`count` sessions written in turns, so their records interleave in time."""
    opened = [AuditLog(directory, f"s{i}", session=lambda i=i: {"root": f"/r{i}"}) for i in range(count)]
    for n in range(records):
        for i, log in enumerate(opened):
            log.write("call", {"call_id": f"{i}-{n}", "tool": "t.x", "decision": {"action": "allow"}})
            log.write("result", {"call_id": f"{i}-{n}", "tool": "t.x", "status": "ok" if n % 3 else "denied"})
    return opened


def test_tail_gives_the_newest_records_of_all_sessions_in_time_order(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    for log in logs(audit, 4, 30):
        log.close()
    everything = sorted((str(r["ts"]), p, r) for p, r in iter_records(audit))
    for n in (0, 1, 7, 40, 1000):
        want = [(p, r) for _, p, r in everything[len(everything) - min(n, len(everything)) :]]
        assert review.tail(audit, n) == want, n
    denied = review.tail(audit, 4, "denied")
    assert [r["type"] for _, r in denied] == ["call", "result", "call", "result"]
    assert all(r["call_id"].endswith("-27") for _, r in denied)


def test_sessions_reads_a_file_again_only_when_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = tmp_path / "audit"
    opened = logs(audit, 3, 5)
    for log in opened[:2]:
        log.close()
    read: list[Path] = []
    real = review.verify_file

    def counting(path: Path, **kwargs: Any) -> Any:
        read.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(review, "verify_file", counting)
    first = review.sessions(audit)
    by_server = {r["server"]: r for r in first}
    assert len(read) == 3 and [r["calls"] for r in first] == [5, 5, 5]
    assert {s: r["ended"] for s, r in by_server.items()} == {"s0": "yes", "s1": "yes", "s2": "open"}
    assert all(r["verified"] for r in first)
    assert [r["denied"] for r in first] == [2, 2, 2] and by_server["s0"]["root"] == "/r0"
    read.clear()
    assert review.sessions(audit) == first
    assert read == [opened[2].path]  # only the session still being written is read again
    # An edited file is verified again, whatever its size and mtime say.
    victim = opened[0].path
    assert victim is not None
    stat = victim.stat()
    victim.write_bytes(victim.read_bytes().replace(b'"status":"ok"', b'"status":"no"', 1))
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    read.clear()
    again = {r["server"]: r for r in review.sessions(audit)}
    assert victim in read and again["s0"]["verified"] is False and again["s1"]["verified"] is True
    opened[2].close()
    assert {r["server"]: r for r in review.sessions(audit)}["s2"]["ended"] == "yes"


@pytest.mark.anyio
async def test_for_commit_lists_the_calls_made_in_that_repository_before_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from mcp import Client

    from clients.cli import main
    from servers import build
    from tests.helpers import make_repo, settings_for, write

    project = make_repo(tmp_path / "project", {"README.md": "# demo\n", "app.py": "x = 1\n"})
    other = make_repo(tmp_path / "other", {"README.md": "# other\n"})
    audit = tmp_path / "audit"
    for root, path in ((project, "app.py"), (other, "README.md")):
        settings = settings_for(root, tmp=tmp_path)
        settings.audit_dir = audit
        server = build("repo", settings)
        async with Client(server, mode="legacy") as client:
            await client.call_tool("read_file", {"path": path})
        server.audit.close()

    def commit_at(epoch: float, message: str) -> str:
        write(project, {"app.py": f"x = {message!r}\n"})
        date = f"@{int(epoch)} +0000"
        monkeypatch.setenv("GIT_COMMITTER_DATE", date)
        monkeypatch.setenv("GIT_AUTHOR_DATE", date)
        git(project, "commit", "-qam", message)
        return git(project, "rev-parse", "HEAD").strip()

    now = time.time()
    git(project, "commit", "-q", "--amend", "--no-edit", f"--date=@{int(now) - 3600} +0000")  # author only
    monkeypatch.setenv("GIT_COMMITTER_DATE", f"@{int(now) - 3600} +0000")
    git(project, "commit", "-q", "--amend", "--no-edit")
    before = commit_at(now - 600, "made before the session")  # its window holds no call
    after = commit_at(now + 600, "the agent's change")  # since `before`: the session's calls
    assert main(["audit", "for-commit", after, "--root", str(project), "--dir", str(audit), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["commit"]["sha"] == after and shown["commit"]["subject"] == "the agent's change"
    (session,) = shown["sessions"]
    assert [(r["type"], r["tool"]) for r in session["records"]] == [
        ("call", "repo.read_file"),
        ("result", "repo.read_file"),
    ]
    assert session["records"][0]["arguments"] == {"path": "app.py"}  # not the other repository's call
    assert main(["audit", "for-commit", before, "--root", str(project), "--dir", str(audit)]) == 0
    assert "no recorded calls in this repository in that time" in capsys.readouterr().out
    with pytest.raises(OnrecordError, match="--output"):  # never reaches git as an option
        review.for_commit(audit, project, "--output=/tmp/x")
    assert main(["audit", "for-commit", "nosuchref", "--root", str(project), "--dir", str(audit)]) == 2
    assert "does not name a commit" in capsys.readouterr().err
