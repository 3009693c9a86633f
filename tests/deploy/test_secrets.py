"""scan_secrets: every scope, baselines, allowlists, the policy, and never the secret itself."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from common.secret_rules import builtin
from servers.deploy.models import SecretFinding
from servers.deploy.secrets import find, fingerprint_of
from tests.helpers import all_audit_text, err, git, ok, write

# Assembled at run time so this file itself holds no secret-shaped literal.
GH = "ghp_" + "Zq8Lm2Xv9Tr4Wb6Ny1Kc3Hd5Fg7Js0Pa2Qe4R"
AWS = "AKIA" + "Q7XM2LB5ZP4KD9WF"
STRIPE = "sk_live_" + "9fQ2xLm7Tb4Wc8Nz1Kd5Hr3V"
SECRETS = (GH, AWS, STRIPE)

pytestmark = pytest.mark.anyio


def _no_secret_anywhere(result: Any, state: Path | None = None) -> None:
    text = str(result.structured_content) + "".join(getattr(b, "text", "") for b in result.content)
    for secret in SECRETS:
        assert secret not in text
    if state is not None:
        audit = all_audit_text(state)
        for secret in SECRETS:
            assert secret not in audit


async def test_clean_repository_has_no_findings(repo: Callable[..., Path], session: Any) -> None:
    root = repo({"app.py": "print('hello')\n", "config.yaml": "port: 8080\n"})
    async with session(root) as call:
        scan = ok(await call("scan_secrets"))
    assert scan["findings"] == [] and scan["total"] == 0
    assert scan["files_scanned"] == 3 and scan["rules"] >= 20
    assert scan["gitleaks"].startswith("skipped")


async def test_every_worktree_scope_is_scanned_and_no_secret_is_returned(
    repo: Callable[..., Path], session: Any, tmp_path: Path
) -> None:
    root = repo(
        {
            "tracked.py": f'TOKEN = "{GH}"\n',
            "edited.ini": "[aws]\nregion = eu-west-1\n",
            "staged.yml": "a: 1\n",
        }
    )
    # unstaged: a tracked file edited on disk
    write(root, {"edited.ini": f"[aws]\nregion = eu-west-1\naws_access_key_id = {AWS}\n"})
    # staged: the index has the secret, the file on disk no longer does
    write(root, {"staged.yml": f"stripe: {STRIPE}\n"})
    git(root, "add", "staged.yml")
    write(root, {"staged.yml": "stripe: from-vault\n"})
    # untracked and not ignored; and an ignored file, which does not ship
    write(root, {"new/notes.md": f"use {GH} for now\n", "ignored/dump.txt": f"{AWS}\n"})
    async with session(root) as call:
        result = await call("scan_secrets")
    scan = ok(result)
    found = {(f["path"], f["rule"], f["where"], f["line"]) for f in scan["findings"]}
    assert found == {
        ("tracked.py", "github_token", "worktree", 1),
        ("edited.ini", "aws_access_key_id", "worktree", 3),
        ("staged.yml", "stripe_key", "staged", 1),
        ("new/notes.md", "github_token", "worktree", 1),
    }
    excerpt = next(f for f in scan["findings"] if f["path"] == "tracked.py")["excerpt"]
    assert excerpt == 'TOKEN = "[REDACTED:github_token]"'
    _no_secret_anywhere(result, tmp_path / "state")


async def test_history_finds_a_secret_removed_since(repo: Callable[..., Path], session: Any) -> None:
    root = repo({"app.py": "x = 1\n"})
    write(root, {"deploy.sh": f"export AWS_ACCESS_KEY_ID={AWS}\n"})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "add deploy script")
    leaked = git(root, "rev-parse", "HEAD").strip()
    write(root, {"deploy.sh": "export AWS_ACCESS_KEY_ID=$FROM_VAULT\n"})
    git(root, "commit", "-qam", "use the vault")
    async with session(root) as call:
        now = ok(await call("scan_secrets"))
        past = await call("scan_secrets", scope="history")
        narrow = ok(await call("scan_secrets", scope="history", range="HEAD~1..HEAD"))
        bad = err(await call("scan_secrets", scope="history", range="--output=/tmp/x"))
        mixed = err(await call("scan_secrets", range="HEAD"))
    assert now["findings"] == []
    history = ok(past)
    assert [(f["path"], f["line"], f["where"]) for f in history["findings"]] == [
        ("deploy.sh", 1, leaked[:12])
    ]
    assert history["commits_scanned"] == 3
    assert narrow["findings"] == [] and narrow["commits_scanned"] == 1
    assert "starts with '-'" in bad and not Path("/tmp/x").exists()
    assert "scope 'history'" in mixed
    _no_secret_anywhere(past)


async def test_baseline_and_allowlist_suppress_and_are_counted(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo(
        {
            "fixtures.py": f'KNOWN = "{GH}"\n',
            "settings.ini": 'password = "changeme"\napi_key = ${API_KEY}\n',
            "code.py": "password = get_password()\ntoken = os.environ['TOKEN']\n",
        }
    )
    async with session(root) as call:
        [finding] = ok(await call("scan_secrets"))["findings"]
        write(
            root,
            {".onrecord-secrets-baseline": f"# a revoked token in a fixture\n{finding['fingerprint']}\n"},
        )
        scan = ok(await call("scan_secrets"))
    assert scan["findings"] == []
    assert scan["suppressed_by_baseline"] == 1
    assert scan["suppressed_by_allowlist"] >= 3


# ----------------------------------------------------------------------- the baseline's fingerprints

OTHER_GH = "ghp_" + "Rt5Yu7Io9Pa1Sd3Fg5Hj7Kl9Zx1Cv3Bn5Mq7W"


async def _accept(call: Any, root: Path) -> dict[str, Any]:
    """Scan, and accept the one finding by its fingerprint, as a user would."""
    [finding] = ok(await call("scan_secrets"))["findings"]
    write(root, {".onrecord-secrets-baseline": f"{finding['fingerprint']}  # reviewed: a test fixture\n"})
    after = ok(await call("scan_secrets"))
    assert after["findings"] == [] and after["suppressed_by_baseline"] == 1
    return finding


async def test_a_fingerprint_binds_a_short_hash_of_the_secret_never_the_secret(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"tests/fixture.py": f'TOKEN = "{GH}"\n'})
    async with session(root) as call:
        result = await call("scan_secrets")
    [finding] = ok(result)["findings"]
    path, rule, line, digest = finding["fingerprint"].rsplit(":", 3)
    assert (path, rule, line) == ("tests/fixture.py", "github_token", "1")
    assert re.fullmatch("[0-9a-f]{12}", digest)
    _no_secret_anywhere(result)


async def test_a_real_secret_put_on_an_accepted_line_is_found(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"tests/fixture.py": f'TOKEN = "{GH}"\n'})
    async with session(root) as call:
        accepted = await _accept(call, root)
        # Another token of the same rule replaces the accepted one, on the same line.
        write(root, {"tests/fixture.py": f'TOKEN = "{OTHER_GH}"\n'})
        result = await call("scan_secrets")
    scan = ok(result)
    [finding] = scan["findings"]
    assert (finding["path"], finding["rule"], finding["line"]) == ("tests/fixture.py", "github_token", 1)
    assert finding["fingerprint"] != accepted["fingerprint"]
    assert scan["suppressed_by_baseline"] == 0
    assert OTHER_GH not in str(result)


async def test_a_second_secret_added_to_an_accepted_line_is_found(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"tests/fixture.py": f'TOKENS = ["{GH}"]\n'})
    async with session(root) as call:
        accepted = await _accept(call, root)
        write(root, {"tests/fixture.py": f'TOKENS = ["{GH}", "{OTHER_GH}"]\n'})
        scan = ok(await call("scan_secrets"))
    [finding] = scan["findings"]  # one finding per rule and line, whose hash covers both
    assert finding["line"] == 1 and finding["fingerprint"] != accepted["fingerprint"]
    assert scan["suppressed_by_baseline"] == 0


async def test_an_accepted_secret_that_moves_to_another_line_is_a_finding_again(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"tests/fixture.py": f'TOKEN = "{GH}"\n'})
    async with session(root) as call:
        accepted = await _accept(call, root)
        write(root, {"tests/fixture.py": f'import os\nTOKEN = "{GH}"\n'})
        scan = ok(await call("scan_secrets"))
    [finding] = scan["findings"]
    assert finding["line"] == 2 and scan["suppressed_by_baseline"] == 0
    # Same secret, same rule: only the line differs.
    assert finding["fingerprint"].rsplit(":", 2)[-1] == accepted["fingerprint"].rsplit(":", 2)[-1]


async def test_an_entry_without_the_hash_accepts_nothing_and_says_how_to_re_accept(
    repo: Callable[..., Path], session: Any
) -> None:
    # The older form: it accepted whatever secret of the rule stood on line 1.
    root = repo(
        {
            "deploy.py": f'AWS_ACCESS_KEY_ID = "{AWS}"\n',
            ".onrecord-secrets-baseline": "deploy.py:aws_access_key_id:1\n",
        }
    )
    async with session(root) as call:
        scan = ok(await call("scan_secrets"))
        report = ok(await call("readiness_report", checks=["secrets"]))
    [finding] = scan["findings"]
    assert finding["fingerprint"].startswith("deploy.py:aws_access_key_id:1:")
    assert scan["suppressed_by_baseline"] == 0
    assert scan["ignored_settings"] == [
        ".onrecord-secrets-baseline: 1 entry path:rule:line without the secret's hash ignored: it would "
        "accept any secret on that line; re-accept each finding by the path:rule:line:hash fingerprint "
        "scan_secrets shows"
    ]
    [check] = report["checks"]
    assert check["status"] == "fail" and report["verdict"] == "fail"
    assert any("without the secret's hash" in e["text"] for e in check["evidence"])


async def test_the_baseline_file_is_scanned_but_its_fingerprints_are_not_findings(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"tests/fixture.py": f'TOKEN = "{GH}"\n', "README.md": "hi\n"})
    async with session(root) as call:
        accepted = await _accept(call, root)  # it asserts the baseline file adds no finding
        # `github_token:1:<hash>` reads as a token assignment; blanked only where it is a fingerprint.
        write(
            root,
            {
                ".onrecord-secrets-baseline": f"{accepted['fingerprint']}  # token: {AWS}\n"
                "tests/fixture.py:github_token:12345\n"  # the older form: ignored, and not a finding
                f"password: {STRIPE}:github_token:1:0123456789ab\n"  # a secret where the path goes
            },
        )
        result = await call("scan_secrets")
    scan = ok(result)
    assert {(f["path"], f["line"], f["rule"]) for f in scan["findings"]} == {
        (".onrecord-secrets-baseline", 1, "aws_access_key_id"),
        (".onrecord-secrets-baseline", 3, "stripe_key"),
    }
    assert scan["suppressed_by_baseline"] == 1
    _no_secret_anywhere(result)


def test_a_withheld_finding_withholds_the_hash_of_its_secret_too() -> None:
    finding = SecretFinding(
        rule="github_token",
        path=".env",
        line=1,
        where="worktree",
        excerpt="x",
        fingerprint=".env:r:1:0123456789ab",
    )
    withheld = finding.withheld()
    assert withheld.fingerprint == withheld.excerpt == "[withheld by policy]"


async def test_a_fingerprint_accepted_in_the_work_tree_also_accepts_it_in_history(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"README.md": "hi\n"})
    write(root, {"tests/fixture.py": f'TOKEN = "{GH}"\n'})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "fixture")
    async with session(root) as call:
        await _accept(call, root)
        history = ok(await call("scan_secrets", scope="history"))
    assert history["findings"] == [] and history["suppressed_by_baseline"] == 1


async def test_a_project_rule_file_adds_rules_and_a_broken_one_is_a_clear_error(
    repo: Callable[..., Path], session: Any
) -> None:
    rules = """
        [[rules]]
        id = "acme_key"
        description = "ACME internal key"
        regex = '''\\bacme_[a-z0-9]{24}\\b'''
        keywords = ["acme_"]
    """
    root = repo({"rules.toml": rules, "app.cfg": "key: acme_0123456789abcdefghijklmn\n"})
    async with session(root, secret_rules="rules.toml") as call:
        scan = ok(await call("scan_secrets"))
    assert [(f["rule"], f["excerpt"]) for f in scan["findings"]] == [("acme_key", "key: [REDACTED:acme_key]")]
    write(root, {"rules.toml": "[[rules]]\nid = 'x'\nregex = '(unclosed'\n"})
    async with session(root, secret_rules="rules.toml") as call:
        message = err(await call("scan_secrets"))
    assert "rules.toml" in message and "does not compile" in message


async def test_findings_in_files_the_policy_denies_are_withheld(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({".env": f"GITHUB_TOKEN={GH}\n", "app.py": f'T = "{GH}"\n'})
    async with session(root) as call:
        result = await call("scan_secrets")
    scan = ok(result)
    assert [f["path"] for f in scan["findings"]] == ["app.py"]
    assert scan["total"] == 2 and "policy" in scan["note"]
    assert ".env" not in str([f for f in scan["findings"]])
    _no_secret_anywhere(result)


def _guesses(path: str, passwords: list[str]) -> list[str]:
    """The fingerprints an agent could compute for `DB_PASSWORD=<guess>` on lines 1 to 3 of `path`."""
    out = []
    for password in passwords:
        hits, _ = find(f"DB_PASSWORD={password}", path, builtin())
        for rule in {h.rule for h in hits}:
            digests = [h.digest for h in hits if h.rule == rule]
            out += [fingerprint_of(path, rule, line, digests) for line in (1, 2, 3)]
    assert out or not passwords
    return out


async def test_the_baseline_tells_nothing_about_a_secret_in_a_file_the_policy_denies(
    repo: Callable[..., Path], session: Any
) -> None:
    weak = "Summer2024!x"
    wrong = [f"Guess{i:03d}!x" for i in range(50)]
    root = repo(
        {".env": f"# db\nDB_PASSWORD={weak}\n", "README.md": "hi\n", ".onrecord-secrets-baseline": ""}
    )
    seen = []
    async with session(root) as call:
        for accepted in ([], wrong, [*wrong, weak], [weak]):
            write(root, {".onrecord-secrets-baseline": "".join(f"{f}\n" for f in _guesses(".env", accepted))})
            worktree = ok(await call("scan_secrets"))
            history = ok(await call("scan_secrets", scope="history"))
            [check] = ok(await call("readiness_report", checks=["secrets"]))["checks"]
            check.pop("duration_s")
            seen.append((worktree, history, check))
    assert all(s == seen[0] for s in seen[1:])  # the right guess looks like no guess and a wrong one
    worktree, history, _ = seen[0]
    for scan in (worktree, history):
        assert scan["total"] == 1 and scan["findings"] == [] and scan["suppressed_by_baseline"] == 0
        assert "1 findings are in files the policy does not let you read" in scan["note"]


async def test_the_baseline_still_accepts_a_finding_in_a_file_the_caller_may_read(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"settings.ini": "[db]\nDB_PASSWORD=Summer2024!x\n"})
    async with session(root) as call:
        before = ok(await call("scan_secrets"))
        accepted = _guesses("settings.ini", ["Summer2024!x"])
        write(root, {".onrecord-secrets-baseline": "".join(f"{f}\n" for f in accepted)})
        after = ok(await call("scan_secrets"))
        history = ok(await call("scan_secrets", scope="history"))
    assert [(f["path"], f["line"]) for f in before["findings"]] == [("settings.ini", 2)]
    for scan in (after, history):
        assert scan["total"] == 0 and scan["suppressed_by_baseline"] == 1


async def test_outside_git_the_directory_is_walked(tmp_path: Path, session: Any) -> None:
    root = tmp_path / "plain"
    write(
        root, {"a.py": f'K = "{AWS}"\n', "node_modules/x.js": f'"{AWS}"\n', "img.bin": b"\0\1" + AWS.encode()}
    )
    async with session(root) as call:
        scan = ok(await call("scan_secrets"))
        history = err(await call("scan_secrets", scope="history"))
    assert [(f["path"], f["rule"]) for f in scan["findings"]] == [("a.py", "aws_access_key_id")]
    assert scan["skipped_files"] == 1
    assert "git repository" in history


async def test_prose_is_not_a_credential_but_a_quoted_value_in_docs_is(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo(
        {
            "README.md": "It prints a URL which holds a random\ntoken: every request without it is refused.\n",
            "docs/setup.md": 'Set `password = "Xk9#mQ2vL8"` in the file.\n',
        }
    )
    async with session(root) as call:
        scan = ok(await call("scan_secrets"))
    assert [(f["path"], f["line"]) for f in scan["findings"]] == [("docs/setup.md", 1)]


async def test_quoted_values_with_any_characters_are_found_and_shell_substitutions_are_not(
    repo: Callable[..., Path], session: Any
) -> None:
    django = "(k4n#2x!vq9z)@w&b7" + "^m1p"
    root = repo(
        {
            "site/settings.py": f'SECRET_KEY = "{django}"\n',
            "scripts/run.sh": 'PASSWORD="$(cat /run/secrets/db_password)"\n',
        }
    )
    async with session(root) as call:
        scan = ok(await call("scan_secrets"))
    assert [(f["path"], f["rule"], f["excerpt"]) for f in scan["findings"]] == [
        ("site/settings.py", "secret_assignment_quoted", 'SECRET_KEY = "[REDACTED:secret_assignment_quoted]"')
    ]
    assert django not in str(scan)


async def test_a_long_scan_reports_progress_as_it_goes(
    repo: Callable[..., Path], session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servers.deploy import secrets

    monkeypatch.setattr(secrets, "CHUNK", 3)
    root = repo({f"src/m{i}.py": f"X = {i}\n" for i in range(10)})
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total, message))

    async with session(root) as call:
        scan = ok(await call("scan_secrets", progress=on_progress))
    assert scan["files_scanned"] == 11
    assert [d for d, _, _ in seen] == [3, 6, 9, 11]
    assert seen[-1][2] == "scanned 11 of 11 files"
