"""Path folding and link resolution shared by the policy and the workspace."""

from __future__ import annotations

import os
from pathlib import Path


def test_the_fast_realpath_agrees_with_os_realpath(tmp_path: Path) -> None:
    from common.workspace import _realpath

    root = tmp_path / "root"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "sub" / "f.txt").write_text("x", encoding="utf-8")
    (tmp_path / "outside.txt").write_text("o", encoding="utf-8")
    (root / "link").symlink_to(tmp_path / "outside.txt")
    (root / "dirlink").symlink_to(root / "dir")
    (root / "loop").symlink_to(root / "loop")
    (root / "rel").symlink_to("dir/sub")
    base = os.path.realpath(root)
    for rel in [
        "dir/sub/f.txt",
        "link",
        "dirlink/sub/f.txt",
        "missing/a/b",
        "dir/missing",
        "loop",
        "rel/f.txt",
        "dir",
    ]:
        lexical = f"{base}/{rel}"
        assert _realpath(base, lexical) == os.path.realpath(lexical), rel
    assert _realpath(str(tmp_path / "nonreal" / ".."), "/etc/passwd") == os.path.realpath("/etc/passwd")
