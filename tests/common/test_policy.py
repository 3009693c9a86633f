from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.config import ConfigError, RuleSource, load_settings
from common.kinds import PATH, PATHS, URL
from common.policy import Policy, parse_rule, path_matches, rule_warnings
from common.urls import canonical_url
from tests.helpers import settings_for

PATH_ARG = {"path": PATH}
READ_ONLY: dict[str, bool | None] = {
    "read_only": True,
    "destructive": False,
    "idempotent": True,
    "open_world": False,
}
DESTRUCTIVE: dict[str, bool | None] = {
    "read_only": False,
    "destructive": True,
    "idempotent": False,
    "open_world": False,
}
OPEN_WORLD: dict[str, bool | None] = {
    "read_only": True,
    "destructive": False,
    "idempotent": True,
    "open_world": True,
}


def policy(tmp_path: Path, text: str) -> Policy:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    return Policy(settings_for(root, text, tmp=tmp_path))


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("**/.env*", ".env", True),
        ("**/.env*", "app/.env.local", True),
        ("**/.env*", "app/env.py", False),
        ("*.pem", "certs/server.pem", True),  # no slash: any depth
        ("/*.pem", "certs/server.pem", False),  # leading slash anchors to the root
        ("deploy/**", "deploy/prod/app.toml", True),
        ("deploy", "deploy/prod.toml", True),  # a matched directory covers its contents
        ("deploy/*.toml", "deploy/prod/app.toml", False),
        ("src/?.py", "src/a.py", True),
        ("src/[!a].py", "src/a.py", False),
    ],
)
def test_path_globs_follow_gitignore_rules(pattern: str, path: str, expected: bool) -> None:
    assert path_matches(pattern, path) is expected


def test_deny_beats_ask_beats_allow_whatever_the_scope(tmp_path: Path) -> None:
    p = policy(
        tmp_path,
        """
        [policy]
        allow = ["repo.*"]
        ask = ["repo.read_file(path=deploy/**)"]
        deny = ["repo.*(path=**/.env*)"]
        """,
    )
    assert p.decide("repo", "read_file", {"path": "src/a.py"}, READ_ONLY, kinds=PATH_ARG).action == "allow"
    asked = p.decide("repo", "read_file", {"path": "deploy/prod.toml"}, READ_ONLY, kinds=PATH_ARG)
    assert asked.action == "ask" and asked.rule == "repo.read_file(path=deploy/**)"
    denied = p.decide("repo", "read_file", {"path": "deploy/.env"}, READ_ONLY, kinds=PATH_ARG)
    assert denied.action == "deny" and denied.rule == "repo.*(path=**/.env*)"
    assert denied.source is not None and denied.source.endswith(".toml") and "cli scope" in denied.reason


def test_paths_are_canonicalised_before_matching(tmp_path: Path) -> None:
    p = policy(tmp_path, '[policy]\ndeny = ["repo.*(path=**/.env*)"]\n')
    root = p.root
    (root / ".env").write_text("X=1", encoding="utf-8")
    (root / "innocent.txt").symlink_to(root / ".env")
    for spelling in [".env", "./.env", "src/../.env", str(root / ".env"), "innocent.txt"]:
        assert (
            p.decide("repo", "read_file", {"path": spelling}, READ_ONLY, kinds=PATH_ARG).action == "deny"
        ), spelling


def test_value_arguments_match_globs_and_booleans_read_as_true_false(tmp_path: Path) -> None:
    p = policy(
        tmp_path,
        """
        [policy]
        ask = ["testing.lint(fix=true)", "deploy.*(url=https://prod.*)"]
        """,
    )
    assert p.decide("testing", "lint", {"fix": True}, DESTRUCTIVE).rule == "testing.lint(fix=true)"
    assert p.decide("testing", "lint", {"fix": False}, READ_ONLY).action == "allow"
    assert p.decide("deploy", "check_http", {"url": "https://prod.example.com"}, READ_ONLY).action == "ask"
    assert p.decide("deploy", "check_http", {"url": "https://staging.example.com"}, READ_ONLY).rule != (
        "deploy.*(url=https://prod.*)"
    )


def test_annotation_defaults_apply_when_no_rule_matches(tmp_path: Path) -> None:
    p = policy(tmp_path, '[policy]\n[policy.annotations]\nopen_world = "deny"\n')
    assert p.decide("x", "read", {}, READ_ONLY).rule == "annotations.read_only"
    assert p.decide("x", "write", {}, DESTRUCTIVE).action == "ask"
    open_world = p.decide("x", "fetch", {}, OPEN_WORLD)
    assert open_world.action == "deny" and open_world.rule == "annotations.open_world"
    assert open_world.source is not None and open_world.source.endswith(".toml")


def test_default_applies_to_tools_without_annotations(tmp_path: Path) -> None:
    p = policy(tmp_path, '[policy]\ndefault = "deny"\n')
    decision = p.decide("x", "unknown", {}, None)
    assert decision.action == "deny" and decision.rule == "default"


def test_builtin_protection_denies_the_audit_dir_even_in_shadow_mode(tmp_path: Path) -> None:
    p = policy(tmp_path, '[policy]\nmode = "shadow"\nallow = ["repo.*"]\n')
    audit = p.settings.audit_path
    audit.mkdir(parents=True)
    (p.root / "logs").symlink_to(audit)
    for spelling in [
        str(audit / "2026-01-01" / "x.jsonl"),
        "logs/2026-01-01/x.jsonl",
        str(p.settings.state_dir),
    ]:
        decision = p.decide("repo", "read_file", {"path": spelling}, READ_ONLY, kinds=PATH_ARG)
        assert decision.action == "deny" and decision.effective == "deny", spelling
        assert decision.source == "built-in"


def test_builtin_protection_covers_the_policy_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / ".onrecord.toml").write_text('[policy]\nallow = ["repo.*"]\n', encoding="utf-8")
    p = Policy(load_settings(root))
    assert (
        p.decide("repo", "read_file", {"path": ".onrecord.toml"}, READ_ONLY, kinds=PATH_ARG).source
        == "built-in"
    )
    assert (
        p.decide(
            "repo", "read_file", {"paths": ["a.py", ".onrecord.toml"]}, READ_ONLY, kinds={"paths": PATHS}
        ).action
        == "deny"
    )


def test_bad_rules_name_the_file_and_the_rule(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"policy\.deny rule 'repo read_file' is not of the form"):
        parse_rule(RuleSource("deny", "repo read_file", "/etc/x.toml", "cli"))
    with pytest.raises(ConfigError, match="must be 'name=pattern'"):
        parse_rule(RuleSource("ask", "repo.x(path)", "/etc/x.toml", "cli"))
    rule = parse_rule(RuleSource("deny", "deploy.*(url=https://a,b.com/*, method=POST)", "f", "cli"))
    assert rule.arguments == (("url", "https://a,b.com/*"), ("method", "POST"))


def test_managed_lock_drops_lower_allows_but_keeps_their_denies(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    managed = Path(os.environ["ONRECORD_MANAGED_POLICY"])
    managed.write_text(
        '[policy]\nlock = true\nmode = "enforce"\nask = ["repo.read_file"]\n', encoding="utf-8"
    )
    (root / ".onrecord.toml").write_text(
        '[policy]\nmode = "shadow"\nallow = ["repo.read_file"]\ndeny = ["repo.search"]\n', encoding="utf-8"
    )
    p = Policy(load_settings(root))
    assert p.settings.mode == "enforce"
    assert p.decide("repo", "read_file", {"path": "a"}, READ_ONLY, kinds=PATH_ARG).action == "ask"
    assert p.decide("repo", "search", {"query": "a"}, READ_ONLY).action == "deny"


def test_default_denies_refuse_secrets_files_but_not_their_examples(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    p = Policy(load_settings(root))
    for secret in [
        ".env",
        "app/.env.production",
        "certs/server.pem",
        "deploy/tls.key",
        "home/.ssh/id_ed25519",
        ".netrc",
    ]:
        decision = p.decide("repo", "read_file", {"path": secret}, READ_ONLY, kinds=PATH_ARG)
        assert decision.action == "deny" and decision.source == "built-in default denies", secret
    for fine in [".env.example", "app/.env.sample", "src/keys.py", "README.md"]:
        assert p.decide("repo", "read_file", {"path": fine}, READ_ONLY, kinds=PATH_ARG).action == "allow", (
            fine
        )


def test_default_denies_can_be_switched_off_by_the_humans_settings_only(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / ".onrecord.toml").write_text("[policy]\ndefault_denies = false\n", encoding="utf-8")
    by_project = Policy(load_settings(root)).decide(
        "repo", "read_file", {"path": ".env"}, READ_ONLY, kinds=PATH_ARG
    )
    assert by_project.action == "deny"
    user = tmp_path / "user.toml"
    user.write_text("[policy]\ndefault_denies = false\n", encoding="utf-8")
    by_human = Policy(load_settings(root, user_file=user)).decide(
        "repo", "read_file", {"path": ".env"}, READ_ONLY, kinds=PATH_ARG
    )
    assert by_human.action == "allow"


def test_negated_conditions_carve_out_exceptions(tmp_path: Path) -> None:
    p = policy(
        tmp_path,
        '[policy]\ndefault_denies = false\nask = ["deploy.*(url=https://*, url!=https://staging.*)"]\n',
    )
    assert p.decide("deploy", "probe", {"url": "https://prod.example.com"}, READ_ONLY).action == "ask"
    assert p.decide("deploy", "probe", {"url": "https://staging.example.com"}, READ_ONLY).action == "allow"


def test_the_listing_screen_clears_only_names_no_rule_or_protection_could_concern(tmp_path: Path) -> None:
    # The fast path for listings must give exactly the full decision, for every kind of name.
    from common.policy import suspects
    from common.workspace import canonical_names

    text = """
    [policy]
    deny = ["repo.*(path=deploy/**)", "repo.read_file(path=**/*.pem)", "repo.*(path=secrets/*.key, path!=secrets/ok.key)"]
    ask = ["repo.*(path=**/prod.toml)"]
    """
    p = policy(tmp_path, text.replace("\n    ", "\n"))
    for tool in ("read_file", "list_files"):
        p.register("repo", tool)
    inside = p.root / "state"
    p.protected.append(str(inside))  # a protected folder inside the root, as a state dir can be
    names = [
        "src/app.py",
        "deploy/x.py",
        "deployment/x.py",
        "a/deploy/x",
        "certs/server.pem",
        "server.pem.txt",
        "secrets/a.key",
        "secrets/ok.key",
        "secrets/b/a.key",
        "conf/prod.toml",
        "prod.toml.bak",
        ".env",
        "app/.env.local",
        "env.py",
        "state/audit.jsonl",
        "states.txt",
        "a//b",
        "./x",
        "x/../deploy/y",
        "../out",
        "/etc/passwd",
        "a/",
        "ünïcode/名前.py",
        "space name.py",
    ]
    for tool in ("read_file", "list_files"):
        screen = p.content_screen("repo", tool)
        assert screen is not False and "deploy" in screen and "state" in screen
        flagged = suspects(screen, names)
        assert flagged is not None
        full = {
            n: p._decide(
                "repo",
                tool,
                {},
                {"path": PATH},
                {"path": [canonical_names(p.root, n, follow_links=False)]},
                None,
                content=True,
            )
            for n in names
        }
        for n in names:
            decided = p.content_decision("repo", tool, n)
            assert decided.action == full[n].action, (tool, n)
            if n not in flagged:  # what the screen clears, the full decision allows
                assert full[n].action == "allow", (tool, n)
    assert suspects(("x",), ["a\nb"]) is None  # a newline in a name: decided one by one
    (tmp_path / "any").mkdir()
    everything = policy(tmp_path / "any", '[policy]\ndeny = ["repo.*(path=*)"]\n')
    everything.register("repo", "read_file")
    assert everything.content_screen("repo", "read_file") is False  # `*` has no fixed text to screen on


URL_ARG = {"url": URL}


def test_an_allow_rule_with_capitals_in_its_host_names_that_host_as_urls_arrive(tmp_path: Path) -> None:
    p = policy(
        tmp_path,
        '[policy]\ndefault = "deny"\n'
        'allow = ["deploy.probe(url=HTTPS://Public.Example.com:443/*, url!=https://public.example.com/Admin*)"]\n',
    )
    assert not p.warnings

    def action(url: str) -> str:
        return p.decide("deploy", "probe", {"url": canonical_url(url)}, None, kinds=URL_ARG).action

    assert action("https://public.example.com/status") == "allow"
    assert action("https://PUBLIC.example.com./status") == "allow"
    assert action("https://public.example.com/Admin/users") == "deny"  # the exception still holds
    assert action("https://evil.example.com/status") == "deny"


def test_an_exception_with_capitals_in_its_host_still_excepts_that_host(tmp_path: Path) -> None:
    p = policy(
        tmp_path,
        '[policy]\ndefault = "deny"\nallow = ["deploy.probe(url=https://*, url!=https://Admin.example.com/*)"]\n',
    )
    decide = p.decide
    assert (
        decide("deploy", "probe", {"url": "https://admin.example.com/x"}, None, kinds=URL_ARG).action
        == "deny"
    )
    assert (
        decide("deploy", "probe", {"url": "https://www.example.com/x"}, None, kinds=URL_ARG).action == "allow"
    )


def test_a_url_rule_mixing_capitals_and_globs_in_its_host_is_warned_naming_the_rule(tmp_path: Path) -> None:
    text = '[policy]\nallow = ["deploy.probe(url=https://*.Example.com/*)"]\nask = ["deploy.probe(url=https://*.Prod.com/*)"]\n'
    p = policy(tmp_path, text)
    (warning,) = p.warnings  # an ask rule matches ignoring case: nothing to warn about
    assert "policy.allow rule 'deploy.probe(url=https://*.Example.com/*)'" in warning
    assert "write them in lower case" in warning and "policy-" in warning  # names the file
    assert rule_warnings(p.settings) == [warning]
    # It allows nothing it was not meant to: the host as URLs arrive is lower-case.
    decided = p.decide("deploy", "probe", {"url": "https://www.example.com/"}, OPEN_WORLD, kinds=URL_ARG)
    assert decided.action == "ask" and decided.rule == "annotations.open_world"
