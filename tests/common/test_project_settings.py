"""The project's own settings file is hostile input: trust comes from the scope a value was loaded
from, each server key says what a project may do to it, and nothing in the file stops a server."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from common.config import ProjectMay, load_settings, server_section
from servers import SERVERS, SETTINGS, build, settings_model
from servers.deploy.settings import DeploySettings
from servers.evals.settings import EvalsSettings

HOSTS = (
    '[deploy]\nallowed_hosts = ["169.254.169.254", "localhost"]\nallow_private_hosts = ["169.254.169.254"]\n'
)
EVALS_HOSTS = '[evals]\nallowed_hosts = ["localhost"]\nallow_private_hosts = ["localhost"]\n'


def _monorepo(tmp_path: Path, text: str) -> Path:
    """A service inside a monorepo whose .onrecord.toml links to a shared file outside the service."""
    shared = tmp_path / "mono" / "shared" / "onrecord.toml"
    shared.parent.mkdir(parents=True)
    shared.write_text(text, encoding="utf-8")
    root = tmp_path / "mono" / "svc"
    root.mkdir()
    (root / ".onrecord.toml").symlink_to("../shared/onrecord.toml")
    return root


def test_a_project_file_linking_out_of_the_root_is_refused_and_sets_no_hosts(tmp_path: Path) -> None:
    root = _monorepo(tmp_path, HOSTS + EVALS_HOSTS)
    settings = load_settings(root, sections=SERVERS)
    assert settings.refused == [
        f"{root / '.onrecord.toml'}: a symbolic link; a project settings file must be a regular file in the "
        "root; the project's settings are ignored, the humans' apply"
    ]
    assert server_section(settings, "deploy", DeploySettings).allowed_hosts == []
    assert server_section(settings, "deploy", DeploySettings).allow_private_hosts == []
    assert server_section(settings, "evals", EvalsSettings).allowed_hosts == []
    assert settings.files == [] and settings.project_servers == {}


def test_a_link_inside_the_root_and_a_linked_pyproject_are_refused_too(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "real.toml").write_text('[policy]\ndeny = ["repo.*"]\n', encoding="utf-8")
    (root / ".onrecord.toml").symlink_to("real.toml")
    assert "a symbolic link" in load_settings(root).refused[0]
    (root / ".onrecord.toml").unlink()
    (tmp_path / "shared.toml").write_text("[tool.onrecord.deploy]\nallowed_hosts = ['x']\n", encoding="utf-8")
    (root / "pyproject.toml").symlink_to(tmp_path / "shared.toml")
    settings = load_settings(root, sections=SERVERS)
    (refused,) = settings.refused
    assert (
        "pyproject.toml: a symbolic link" in refused
        and "[tool.onrecord] table, if any, is not read" in refused
    )
    assert server_section(settings, "deploy", DeploySettings).allowed_hosts == []


def test_trust_comes_from_the_scope_a_file_was_loaded_as_never_from_its_path(tmp_path: Path) -> None:
    # The humans may keep their own file anywhere, even under the root: it is theirs because they
    # passed it as theirs. The project's regular file sets the same keys and is refused.
    root = tmp_path / "root"
    root.mkdir()
    human = root / "ops" / "human.toml"
    human.parent.mkdir()
    human.write_text('[deploy]\nallowed_hosts = ["status.example.com"]\n', encoding="utf-8")
    (root / ".onrecord.toml").write_text(HOSTS, encoding="utf-8")
    settings = load_settings(root, user_file=human, sections=SERVERS)
    options = server_section(settings, "deploy", DeploySettings)
    assert options.allowed_hosts == ["status.example.com"] and options.allow_private_hosts == []
    assert settings.origin("deploy", "allowed_hosts") == (str(human), "user")
    project = root / ".onrecord.toml"
    assert settings.refused == [
        f"{project}: deploy.allowed_hosts = ['169.254.169.254', 'localhost'] ignored: only the humans' settings may set it",
        f"{project}: deploy.allow_private_hosts = ['169.254.169.254'] ignored: only the humans' settings may set it",
    ]


def test_a_server_table_is_read_twice_and_refused_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / ".onrecord.toml").write_text(HOSTS, encoding="utf-8")
    settings = load_settings(root, sections=SERVERS)
    first = server_section(settings, "deploy", DeploySettings)
    assert server_section(settings, "deploy", DeploySettings) == first
    assert len(settings.refused) == 2


HOSTILE_PYPROJECT = {
    "tool is a number": ("tool = 5\n", None),
    "tool is a string": ('tool = "onrecord"\n', None),
    "onrecord is a number": ("[tool]\nonrecord = 1\n", "key 'tool.onrecord' must be a table"),
    "deep nesting": ("x = " + "[" * 50_000 + "]" * 50_000 + "\n", "nested too deeply"),
    "huge integer": ("x = " + "9" * 5000 + "\n", "not read: Exceeds the limit"),
    "not UTF-8": (b"[tool.onrecord.policy]\nmode = '\xff'\n", "not valid TOML"),
    "broken TOML": ("[tool.onrecord\n", "not valid TOML"),
    "too large": ("# " + "x" * 1_000_001 + "\n", "larger than 1000000 bytes"),
    "deploy is a number": (
        "[tool.onrecord]\ndeploy = 5\n",
        "tool.onrecord.deploy = 5 ignored: must be a table",
    ),
    "policy is a list": (
        "[tool.onrecord]\npolicy = [1]\n",
        "tool.onrecord.policy = [1] ignored: must be a table",
    ),
    "a rule is a number": (
        "[tool.onrecord.policy]\ndeny = [5]\n",
        "tool.onrecord.policy.deny = [5] ignored: 0: Input should be a valid string",
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE_PYPROJECT))
def test_hostile_pyproject_contents_start_every_server_with_the_humans_settings(
    tmp_path: Path, name: str
) -> None:
    text, reason = HOSTILE_PYPROJECT[name]
    root = tmp_path / "root"
    root.mkdir()
    path = root / "pyproject.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    human = tmp_path / "user.toml"
    human.write_text('[policy]\ndefault = "ask"\n[deploy]\nmax_redirects = 2\n', encoding="utf-8")
    settings = load_settings(root, user_file=human, sections=SERVERS)
    server = build("all", settings)  # every server's tables read; nothing raises
    assert server.config.default == "ask"
    assert server_section(settings, "deploy", DeploySettings).max_redirects == 2
    if reason is None:
        assert settings.refused == []
    else:
        assert any(r.startswith(str(path)) and reason in r for r in settings.refused), settings.refused


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "{a = " * 30_000 + "1" + "}" * 30_000 + "\n",
        "n = " + "1" * 5000 + "\n",
        "[deploy\n",
    ],
    ids=["deep", "bigint", "broken"],
)
def test_a_dedicated_file_that_cannot_be_read_is_refused_whole(tmp_path: Path, text: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / ".onrecord.toml").write_text(text, encoding="utf-8")
    settings = load_settings(root, sections=SERVERS)
    (refused,) = settings.refused
    assert refused.startswith(str(root / ".onrecord.toml")) and "the humans' apply" in refused
    build("all", settings)


def test_a_fifo_named_like_the_project_file_does_not_hang_the_start(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / ".onrecord.toml")
    (refused,) = load_settings(root).refused
    assert "not a regular file" in refused


HUMANS = """
[deploy]
disabled = ["tests", "lint"]
advisory = ["pushed"]
max_body_bytes = 500000
min_cert_days = 30
fail_on_inconclusive = true
[deploy.checklist]
owner = "CODEOWNERS"
[evals.gates.accuracy]
min = 0.9
"""

PROJECT = """
[deploy]
disabled = ["lint", "secrets"]
advisory = ["pushed", "config"]
max_body_bytes = 100000
max_redirects = 9
min_cert_days = 7
large_file_kb = 512
fail_on_inconclusive = false
base = "HEAD"
max_file_bytes = 1000
history_commits = 1
lock_files = ["uv.lock", "README.md"]
[deploy.checklist]
owner = "https://example.com/anyone"
rollback_plan = "docs/rollback.md"
[evals.gates.accuracy]
min = 0.1
[evals.gates.f1]
min = 0.5
"""


def test_each_server_key_takes_from_the_project_only_what_its_declaration_allows(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    human = tmp_path / "user.toml"
    human.write_text(HUMANS, encoding="utf-8")
    (root / ".onrecord.toml").write_text(PROJECT, encoding="utf-8")
    settings = load_settings(root, user_file=human, sections=SERVERS)
    deploy = server_section(settings, "deploy", DeploySettings)
    evals = server_section(settings, "evals", EvalsSettings)
    # narrow: the project dropped "tests" from the humans' disabled list (it runs again); its own
    # additions ("secrets", "config") are refused.
    assert deploy.disabled == ["lint"] and deploy.advisory == ["pushed"]
    assert deploy.lock_files == ["uv.lock"]
    # lower / raise: taken when stricter, refused otherwise.
    assert deploy.max_body_bytes == 100_000 and deploy.large_file_kb == 512
    assert deploy.max_redirects == 5 and deploy.min_cert_days == 30 and deploy.fail_on_inconclusive is True
    # never: the keys that decide what passes.
    assert deploy.base is None and deploy.max_file_bytes == 2_000_000 and deploy.history_commits == 1000
    # add: the humans' entries stay, the project's new ones join.
    assert deploy.checklist == {"owner": "CODEOWNERS", "rollback_plan": "docs/rollback.md"}
    assert set(evals.gates) == {"accuracy", "f1"} and evals.gates["accuracy"].min == 0.9
    project = root / ".onrecord.toml"
    refused = [r.removeprefix(f"{project}: ") for r in settings.refused]
    assert refused == [
        "deploy.disabled = ['secrets'] ignored: a project file may only drop entries of this list "
        f"(the humans' settings ({human}): ['tests', 'lint'])",
        "deploy.advisory = ['config'] ignored: a project file may only drop entries of this list "
        f"(the humans' settings ({human}): ['pushed'])",
        "deploy.max_redirects = 9 ignored: a project file may only lower it (the default: 5)",
        f"deploy.min_cert_days = 7 ignored: a project file may only raise it (the humans' settings ({human}): 30)",
        "deploy.fail_on_inconclusive = False ignored: a project file may only raise it "
        f"(the humans' settings ({human}): True)",
        "deploy.base = 'HEAD' ignored: only the humans' settings may set it",
        "deploy.max_file_bytes = 1000 ignored: only the humans' settings may set it",
        "deploy.history_commits = 1 ignored: only the humans' settings may set it",
        "deploy.lock_files = ['README.md'] ignored: a project file may only drop entries of this list "
        "(the default: ['uv.lock', 'poetry.lock', 'pdm.lock', 'Pipfile.lock', 'requirements.txt', "
        "'requirements.lock', 'package-lock.json', 'yarn.lock', 'pnpm-lock.yaml', 'Cargo.lock', 'go.sum', "
        "'Gemfile.lock'])",
        f"deploy.checklist = {{'owner': 'https://example.com/anyone'}} ignored: the humans' settings ({human}) "
        "define 'owner'; a project file may only add entries",
        f"evals.gates = {{'accuracy': {{'min': 0.1}}}} ignored: the humans' settings ({human}) define "
        "'accuracy'; a project file may only add entries",
    ]
    assert settings.origin("deploy", "max_body_bytes") == (str(project), "project")
    assert settings.origin("deploy", "min_cert_days") == (str(human), "user")


def test_a_project_value_of_the_wrong_type_is_refused_not_raised(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / ".onrecord.toml").write_text(
        '[deploy]\nmax_redirects = "many"\nlarge_file_kb = 10\n[data]\nmemory_mb = 1e400\n', encoding="utf-8"
    )
    settings = load_settings(root, sections=SERVERS)
    assert server_section(settings, "deploy", DeploySettings).large_file_kb == 10
    build("all", settings)
    assert settings.refused[0].endswith(
        "deploy.max_redirects = 'many' ignored: max_redirects: Input should be a valid integer, "
        "unable to parse string as an integer"
    )
    assert "data.memory_mb = inf ignored" in settings.refused[1]


@pytest.mark.parametrize("server", list(SETTINGS))
def test_every_server_setting_declares_what_a_project_may_do_with_it(server: str) -> None:
    model: type[BaseModel] = settings_model(server)
    for name, field in model.model_fields.items():
        declared: list[Any] = [m for m in field.metadata if isinstance(m, ProjectMay)]
        assert len(declared) == 1, (
            f"[{server}] {name} needs a ProjectMay (common.config) in its Annotated type"
        )
    assert set(SETTINGS) == set(SERVERS)


def test_a_project_rule_that_does_not_parse_is_refused_and_the_others_apply(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / ".onrecord.toml").write_text(
        '[policy]\ndeny = ["repo.*(path=", "repo.read_file(path=secret/**)"]\nask = ["(((("]\n',
        encoding="utf-8",
    )
    settings = load_settings(root, sections=SERVERS)
    build("all", settings)
    project = [(r.action, r.text) for r in settings.rules if r.scope == "project"]
    assert project == [("deny", "repo.read_file(path=secret/**)")]
    assert [r.split(": ", 1)[1].split(" is not")[0] for r in settings.refused] == [
        "policy.deny rule 'repo.*(path='",
        "policy.ask rule '(((('",
    ]
    assert all(r.endswith("; ignored") for r in settings.refused)


def test_doctor_lists_what_a_project_server_table_was_refused(tmp_path: Path) -> None:
    from clients.doctor import settings_findings

    root = tmp_path / "root"
    root.mkdir()
    (root / ".onrecord.toml").write_text(HOSTS, encoding="utf-8")
    findings, settings = settings_findings(root, None)
    assert settings is not None
    assert any(f.status == "ok" and f.detail.endswith(".onrecord.toml: parses") for f in findings)
    refused = [f.detail for f in findings if f.detail.startswith("refused: ")]
    assert any("deploy.allowed_hosts = " in r and "only the humans' settings" in r for r in refused)
    (root / ".onrecord.toml").unlink()
    (root / ".onrecord.toml").symlink_to(tmp_path / "elsewhere.toml")
    findings, _ = settings_findings(root, None)
    assert not [f for f in findings if f.status == "problem"]
    assert any("a symbolic link" in f.detail for f in findings)


def test_a_pyproject_table_shadowed_by_the_dedicated_file_is_warned_about_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from clients.cli import main
    from clients.doctor import settings_findings

    root = tmp_path / "root"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.py").write_text("x = 1\n", encoding="utf-8")
    (root / ".onrecord.toml").write_text('[policy]\nask = ["testing.lint(fix=true)"]\n', encoding="utf-8")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.onrecord.policy]\ndeny = ["repo.read_file(path=src/**)"]\n',
        encoding="utf-8",
    )
    warning = "pyproject.toml [tool.onrecord] not read: .onrecord.toml takes precedence; merge them"
    # The precedence stays (one project file), and says so where people look.
    settings = load_settings(root, sections=SERVERS)
    assert not any(r.text == "repo.read_file(path=src/**)" for r in settings.rules)
    assert len(settings.warnings) == 1 and warning in settings.warnings[0]
    findings, _ = settings_findings(root, None)
    assert any(warning in f.detail and f.status == "problem" for f in findings)
    args = ["policy", "explain", "repo.read_file", '{"path": "src/a.py"}', "--root", str(root)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ALLOW" in out and f"warning: {root / 'pyproject.toml'}: {warning}" in out
    assert main([*args, "--json"]) == 0
    assert warning in json.loads(capsys.readouterr().out)["warnings"][0]
    # A pyproject.toml without the table, or without a dedicated file beside it, warns of nothing.
    (root / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    assert load_settings(root, sections=SERVERS).warnings == []
    (root / "pyproject.toml").write_text('[tool.onrecord.policy]\ndeny = ["repo.*"]\n', encoding="utf-8")
    (root / ".onrecord.toml").unlink()
    assert load_settings(root, sections=SERVERS).warnings == []


def test_what_a_project_may_do_with_a_key_is_checked_before_the_values_bounds(tmp_path: Path) -> None:
    """A bound named for a value the project may not set at all reads as an invitation to try another."""
    from clients.doctor import settings_findings

    root = tmp_path / "root"
    root.mkdir()
    (root / ".onrecord.toml").write_text(
        "[deploy]\nmax_file_bytes = 1\nmax_redirects = 50\nmin_cert_days = -1\nlarge_file_kb = 0\n"
        "[limits]\nmax_result_tokens = 1000000\ncall_timeout_s = 0\n[audit]\nbatch_ms = 0\n",
        encoding="utf-8",
    )
    findings, settings = settings_findings(root, None)
    assert settings is not None
    project = root / ".onrecord.toml"
    refused = sorted(r.removeprefix(f"{project}: ") for r in settings.refused)
    assert refused == [
        "audit.batch_ms = 0 ignored: only the humans' settings say where and how the audit log is kept",
        # Below a bound is a lowering, which the project may do: then the bound is the reason.
        "deploy.large_file_kb = 0 ignored: large_file_kb: Input should be greater than or equal to 1",
        "deploy.max_file_bytes = 1 ignored: only the humans' settings may set it",
        "deploy.max_redirects = 50 ignored: a project file may only lower it (the default: 5)",
        "deploy.min_cert_days = -1 ignored: a project file may only raise it (the default: 14)",
        "limits.call_timeout_s = 0 ignored: Input should be greater than 0",
        "limits.max_result_tokens = 1000000 ignored: a project file may only lower limits",
    ]
    shown = [f.detail for f in findings]
    assert any("deploy.max_file_bytes = 1 ignored: only the humans' settings may set it" in d for d in shown)
    assert not any("greater than or equal to 1000" in d for d in shown)
