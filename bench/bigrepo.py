"""A large git repository for benchmarks: Django's source distribution, committed as one repo.

The sdist comes from the package registry (pip download) and is cached, with the repository made
from it, under $ONRECORD_BENCH_CACHE (default ~/.cache/onrecord-bench).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

PACKAGE = "django==5.2.19"


def cache_dir() -> Path:
    path = Path(os.environ.get("ONRECORD_BENCH_CACHE", Path.home() / ".cache" / "onrecord-bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sdist_tree(package: str, pattern: str, name: str) -> Path:
    """An unpacked source distribution under the cache, downloaded with pip on first use."""
    cache = cache_dir()
    root = cache / name
    if root.is_dir():
        return root
    sdists = sorted(cache.glob(pattern))
    if not sdists:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                package,
                "-d",
                str(cache),
            ],
            check=True,
        )
        sdists = sorted(cache.glob(pattern))
    scratch = cache / f"{name}-extract"
    with tarfile.open(sdists[-1]) as tar:
        tar.extractall(scratch, filter="data")
    next(scratch.iterdir()).rename(root)
    return root


def big_repo() -> Path:
    """The repository, made on first use (downloads about 11 MB once)."""
    root = cache_dir() / "django-repo"
    if (root / ".git").is_dir():
        return root
    sdist_tree(PACKAGE, "django-*.tar.gz", "django-repo")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "import sdist"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)
    return root


if __name__ == "__main__":
    repo = big_repo()
    files = subprocess.run(
        ["git", "ls-files"], cwd=repo, capture_output=True, text=True, encoding="utf-8", check=True
    ).stdout.count("\n")
    print(f"{repo}: {files} tracked files")
