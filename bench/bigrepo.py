"""Large git repositories for benchmarks, cached under $ONRECORD_BENCH_CACHE (default
~/.cache/onrecord-bench):

- `big_repo()`: Django's source distribution (from the package registry), committed as one repo;
- `generated_repo()`: a deterministic 55,000-file, 5,000-commit Python repository written with
  `git fast-import` (500 packages of 100 modules that import each other, 5,000 test files, then
  4,999 commits of a few edits each).
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


PACKAGES, MODULES, COMMITS = 500, 100, 5000


def _module(p: int, m: int, rev: int = 0) -> bytes:
    """Module m of package p at revision rev: imports two neighbours, defines a class and functions."""
    a, b = (p * 7 + m * 3) % PACKAGES, (m * 11 + 5) % MODULES
    lines = [
        f'"""Package {p}, module {m} (revision {rev})."""',
        "",
        "from __future__ import annotations",
        "",
        f"from pkg{a:03d}.mod_{b:02d} import helper_{b}",
        f"from pkg{p:03d} import mod_{(m + 1) % MODULES:02d}",
        "",
        f"LIMIT_{m} = {rev + m}",
        "",
        "",
        f"class Handler{p}_{m}:",
        f'    """Handles the {m}th kind of request in package {p}."""',
        "",
        "    def __init__(self, size: int) -> None:",
        "        self.size = size",
        "",
        "    def run(self, value: int) -> int:",
        f"        return helper_{b}(value) + mod_{(m + 1) % MODULES:02d}.helper_{(m + 1) % MODULES}(self.size)",
        "",
        "",
        f"def helper_{m}(value: int) -> int:",
        f"    return value * {m + 1} + LIMIT_{m}",
        "",
        "",
        f"def load_config_{m}(path: str) -> dict[str, str]:",
        "    with open(path, encoding='utf-8') as f:",
        "        return dict(line.split('=', 1) for line in f if '=' in line)",
    ]
    return ("\n".join(lines) + "\n").encode()


def _test(p: int, m: int) -> bytes:
    return (
        f"from pkg{p:03d}.mod_{m:02d} import Handler{p}_{m}, helper_{m}\n\n\n"
        f"def test_helper_{m}():\n    assert helper_{m}(1) > 0\n\n\n"
        f"def test_handler_{m}():\n    assert Handler{p}_{m}(2).run(3) is not None\n"
    ).encode()


def generated_repo() -> Path:
    """The generated repository, made on first use (about 30 s)."""
    root = cache_dir() / "generated-repo"
    if (root / ".git").is_dir() and (root / ".complete").exists():
        return root
    import random
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    proc = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=root, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    out = proc.stdin
    mark = 0

    def blob(data: bytes) -> int:
        nonlocal mark
        mark += 1
        out.write(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)) + data + b"\n")
        return mark

    def commit(n: int, message: str, changes: list[tuple[str, int]]) -> None:
        when = 1_700_000_000 + n * 600
        author = f"Dev {n % 17} <dev{n % 17}@example.com> {when} +0000".encode()
        body = message.encode()
        out.write(b"commit refs/heads/main\n")
        out.write(b"author " + author + b"\ncommitter " + author + b"\n")
        out.write(b"data %d\n" % len(body) + body + b"\n")
        if n == 0:
            out.write(b"deleteall\n")
        for path, ref in changes:
            out.write(b"M 100644 :%d %s\n" % (ref, path.encode()))
        out.write(b"\n")

    initial: list[tuple[str, int]] = [
        ("README.md", blob(b"# generated\n")),
        ("pyproject.toml", blob(b"[project]\nname = 'gen'\n")),
    ]
    for p in range(PACKAGES):
        initial.append((f"pkg{p:03d}/__init__.py", blob(b"")))
        for m in range(MODULES):
            initial.append((f"pkg{p:03d}/mod_{m:02d}.py", blob(_module(p, m))))
            if m % 10 == 0:
                initial.append((f"tests/pkg{p:03d}/test_mod_{m:02d}.py", blob(_test(p, m))))
    commit(0, "initial import", initial)
    rng = random.Random(42)
    revisions: dict[tuple[int, int], int] = {}
    for n in range(1, COMMITS):
        touched = []
        p = rng.randrange(PACKAGES)
        for _ in range(rng.randint(2, 8)):
            m = rng.randrange(MODULES)
            rev = revisions[(p, m)] = revisions.get((p, m), 0) + 1
            touched.append((f"pkg{p:03d}/mod_{m:02d}.py", blob(_module(p, m, rev))))
        commit(n, f"pkg{p:03d}: change {n}", touched)
    out.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    subprocess.run(["git", "reset", "-q", "--hard", "main"], cwd=root, check=True)
    (root / ".git" / "info" / "exclude").write_text(".complete\n", encoding="utf-8")
    (root / ".complete").write_text("ok\n", encoding="utf-8")
    return root


if __name__ == "__main__":
    print(generated_repo())
    repo = big_repo()
    files = subprocess.run(
        ["git", "ls-files"], cwd=repo, capture_output=True, text=True, encoding="utf-8", check=True
    ).stdout.count("\n")
    print(f"{repo}: {files} tracked files")
