from __future__ import annotations

import json
import os
import stat
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clients import hosts
from clients.cli import main
from clients.hostfile import strip_jsonc
from clients.hosts import HOSTS
from clients.install import run_install
from clients.probe import Launch, ProbeResult, probe, probe_all
from tests.helpers import make_repo

ONRECORD = str(Path(sys.executable).parent / "onrecord")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CODEX_HOME", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    return home


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_repo(tmp_path / "project", {"README.md": "# demo\n"})
    monkeypatch.chdir(root)
    return root


class FakeProber:
    """Answers for every launch as if the server started, and remembers what it was asked."""

    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.launches: list[Launch] = []

    async def __call__(self, launches: list[Launch]) -> list[ProbeResult]:
        self.launches += launches
        return [
            ProbeResult(
                launch,
                ok=self.ok,
                tools=["t"] if self.ok else [],
                server="fake",
                error="" if self.ok else "broke",
            )
            for launch in launches
        ]


def install(args: list[str], prober: FakeProber | None = None) -> int:
    from clients.cli import parser

    parsed = parser().parse_args(["install", *args])
    return run_install(parsed, prober or FakeProber())


# Each host's file and the entry it documents for one server.
def config_dir() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"])


USER_FILES: dict[str, Callable[[Path], Path]] = {
    "claude-desktop": lambda home: config_dir() / "Claude" / "claude_desktop_config.json",
    "claude-code": lambda home: home / ".claude.json",
    "vscode": lambda home: config_dir() / "Code" / "User" / "mcp.json",
    "cursor": lambda home: home / ".cursor" / "mcp.json",
    "codex": lambda home: home / ".codex" / "config.toml",
    "gemini": lambda home: home / ".gemini" / "settings.json",
}
KEYS = {"vscode": "servers", "codex": "mcp_servers"}


def load(host: str, path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    return tomllib.loads(text) if host == "codex" else json.loads(text)


def servers_in(host: str, path: Path) -> dict[str, Any]:
    return load(host, path)[KEYS.get(host, "mcpServers")]


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_install_writes_each_hosts_documented_file_and_shape(home: Path, project: Path, host: str) -> None:
    prober = FakeProber()
    assert install([host, "--servers", "repo,testing"], prober) == 0
    path = USER_FILES[host](home)
    servers = servers_in(host, path)
    assert sorted(servers) == ["onrecord-repo", "onrecord-testing"]
    entry = servers["onrecord-repo"]
    assert entry["command"] == ONRECORD and os.path.isabs(entry["command"])
    assert entry["args"] == ["serve", "repo", "--root", str(project)]
    # The conftest sets these; a host would start the server without them.
    assert entry["env"]["ONRECORD_STATE_DIR"] == os.environ["ONRECORD_STATE_DIR"]
    assert entry["env"]["XDG_CONFIG_HOME"] == os.environ["XDG_CONFIG_HOME"]
    assert "HOME" not in entry["env"] and "PATH" not in entry["env"]
    if host in ("claude-code", "vscode"):
        assert entry["type"] == "stdio"
    else:
        assert "type" not in entry
    if host == "codex":
        assert entry["tool_timeout_sec"] > 600 and entry["startup_timeout_sec"] >= 30
    elif host == "gemini":
        assert entry["timeout"] > 600_000  # milliseconds
    else:
        assert not {"timeout", "tool_timeout_sec"} & set(entry)
    # The check started each server as written, from the home directory.
    assert [(launch.command, launch.args, launch.cwd) for launch in prober.launches] == [
        (ONRECORD, ["serve", n, "--root", str(project)], home) for n in ("repo", "testing")
    ]
    assert prober.launches[0].env == entry["env"]


SEEDS = {
    "json": '{\n    "theme": "dark",\n    "KEY": {\n        "other": {"command": "x", "args": ["y"], "disabled": true}\n    },\n    "nested": {"a": [1, 2]},\n}\n',
    "toml": 'model = "o3"\n# the user\'s own comment\n[mcp_servers.other]\ncommand = "x"\nargs = ["y"]\n\n[profiles.fast]\nmodel = "small" # fast\n',
}


def seed(host: str, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = SEEDS["toml" if host == "codex" else "json"].replace("KEY", KEYS.get(host, "mcpServers"))
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return text


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_install_merges_backs_up_keeps_the_mode_and_a_second_run_changes_nothing(
    home: Path, project: Path, host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = USER_FILES[host](home)
    original = seed(host, path)
    assert install([host, "--servers", "repo"]) == 0
    out = capsys.readouterr().out
    doc = load(host, path)
    servers = doc[KEYS.get(host, "mcpServers")]
    assert servers["other"] == {
        "command": "x",
        "args": ["y"],
        **({} if host == "codex" else {"disabled": True}),
    }
    assert "onrecord-repo" in servers
    if host == "codex":
        text = path.read_text(encoding="utf-8")
        assert text.startswith(original.rstrip("\n"))  # comments and layout kept, ours appended
        assert doc["profiles"] == {"fast": {"model": "small"}} and doc["model"] == "o3"
    else:
        assert doc["theme"] == "dark" and doc["nested"] == {"a": [1, 2]}
        assert path.read_text(encoding="utf-8").startswith('{\n    "theme"')  # the file's own indent
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    backups = list(path.parent.glob(f"{path.name}.onrecord-*.bak"))
    assert len(backups) == 1 and backups[0].read_text(encoding="utf-8") == original
    assert f"previous version: {backups[0]}" in out

    written = path.read_text(encoding="utf-8")
    assert install([host, "--servers", "repo"]) == 0
    assert "already has these entries; nothing written" in capsys.readouterr().out
    assert path.read_text(encoding="utf-8") == written
    assert len(list(path.parent.glob(f"{path.name}.onrecord-*.bak"))) == 1


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_dry_run_prints_the_change_and_writes_and_starts_nothing(
    home: Path, project: Path, host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = USER_FILES[host](home)
    original = seed(host, path)
    prober = FakeProber()
    assert install([host, "--dry-run"], prober) == 0
    out = capsys.readouterr().out
    assert f"would write {path}" in out and "+" in out and "onrecord-repo" in out
    assert path.read_text(encoding="utf-8") == original and prober.launches == []
    assert not list(path.parent.glob("*.bak"))


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_uninstall_removes_only_onrecords_entries(
    home: Path, project: Path, host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = USER_FILES[host](home)
    seed(host, path)
    assert install([host]) == 0
    installed = path.read_text(encoding="utf-8")
    assert main(["uninstall", host, "--dry-run"]) == 0
    assert path.read_text(encoding="utf-8") == installed
    assert main(["uninstall", host]) == 0
    assert "removed onrecord-repo, onrecord-testing" in capsys.readouterr().out
    doc = load(host, path)
    assert list(doc[KEYS.get(host, "mcpServers")]) == ["other"]
    if host == "codex":
        assert "# the user's own comment" in path.read_text(encoding="utf-8")
    else:
        assert doc["theme"] == "dark"
    assert any(
        b.read_text(encoding="utf-8") == installed for b in path.parent.glob(f"{path.name}.onrecord-*.bak")
    )
    assert main(["uninstall", host]) == 0
    assert "no onrecord entries; nothing to remove" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("host", "file", "root"),
    [
        ("claude-code", ".mcp.json", "${CLAUDE_PROJECT_DIR:-.}"),
        ("vscode", ".vscode/mcp.json", "${workspaceFolder}"),
        ("cursor", ".cursor/mcp.json", "${workspaceFolder}"),
        ("gemini", ".gemini/settings.json", "."),
    ],
)
def test_a_project_file_names_the_command_on_path_and_the_project_by_the_hosts_variable(
    home: Path, project: Path, host: str, file: str, root: str
) -> None:
    prober = FakeProber()
    assert install([host, "--project", "--servers", "repo"], prober) == 0
    entry = json.loads((project / file).read_text(encoding="utf-8"))[KEYS.get(host, "mcpServers")][
        "onrecord-repo"
    ]
    assert entry["command"] == "onrecord" and entry["args"] == ["serve", "repo", "--root", root]
    assert "env" not in entry  # a committed file carries no one machine's paths
    # The check expands the variable as the host does and starts the server in the project.
    (launch,) = prober.launches
    assert launch.command == "onrecord" and launch.cwd == project
    assert launch.args[-1] in (str(project), ".")
    assert not (home / ".claude.json").exists()


@pytest.mark.parametrize("host", ["claude-desktop", "codex"])
def test_a_host_without_a_project_file_refuses_project(
    home: Path, project: Path, host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["install", host, "--project"]) == 2
    assert "has no project file" in capsys.readouterr().err


def test_unknown_servers_are_refused(home: Path, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install", "cursor", "--servers", "repo,nosuch"]) == 2
    assert "unknown server(s) 'nosuch'" in capsys.readouterr().err


def test_state_and_onrecord_variables_are_passed_through_env(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("ONRECORD_LOG_LEVEL", "INFO")
    monkeypatch.setenv("UNRELATED", "x")
    assert install(["cursor", "--servers", "repo"]) == 0
    env = servers_in("cursor", home / ".cursor" / "mcp.json")["onrecord-repo"]["env"]
    assert env["XDG_STATE_HOME"] == str(home / "state") and env["ONRECORD_LOG_LEVEL"] == "INFO"
    assert "UNRELATED" not in env


def test_claude_desktops_file_is_where_each_os_keeps_it(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = HOSTS["claude-desktop"]
    monkeypatch.setattr(hosts.sys, "platform", "darwin")
    assert (
        host.user_file() == home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
    )
    monkeypatch.setattr(hosts.sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(home / "AppData" / "Roaming"))
    assert host.user_file() == home / "AppData" / "Roaming" / "Claude" / "claude_desktop_config.json"
    monkeypatch.setattr(hosts.sys, "platform", "linux")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert host.user_file() == home / ".config" / "Claude" / "claude_desktop_config.json"


def test_codex_home_is_honoured(home: Path, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEX_HOME", str(home / "codex-home"))
    assert install(["codex", "--servers", "repo"]) == 0
    assert (
        "onrecord-repo"
        in tomllib.loads((home / "codex-home" / "config.toml").read_text(encoding="utf-8"))["mcp_servers"]
    )


def test_a_jsonc_file_with_comments_is_refused_not_stripped(
    home: Path, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_dir() / "Code" / "User" / "mcp.json"
    path.parent.mkdir(parents=True)
    text = '{\n  // my servers\n  "servers": {"other": {"type": "stdio", "command": "x"}},\n}\n'
    path.write_text(text, encoding="utf-8")
    assert main(["install", "vscode"]) == 2
    err = capsys.readouterr().err
    assert "has comments, which rewriting it would lose" in err and err.count("\n") == 1
    assert path.read_text(encoding="utf-8") == text


def test_jsonc_strings_that_look_like_comments_are_data() -> None:
    clean, comments = strip_jsonc('{"url": "http://x/*y*/", "a": [1, 2,], /* c */ "b": "\\"//",}')
    assert comments
    assert json.loads(clean) == {"url": "http://x/*y*/", "a": [1, 2], "b": '"//'}
    assert strip_jsonc('{"a": 1,\n}') == ('{"a": 1\n}', False)


def test_a_codex_entry_in_another_toml_form_is_refused(
    home: Path, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = home / ".codex" / "config.toml"
    path.parent.mkdir()
    text = 'mcp_servers = { onrecord-repo = { command = "old" } }\n'
    path.write_text(text, encoding="utf-8")
    assert main(["install", "codex", "--servers", "repo"]) == 2
    assert "cannot edit safely" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == text


def test_a_symlinked_config_stays_a_symlink(home: Path, project: Path) -> None:
    real = home / "dotfiles" / "mcp.json"
    real.parent.mkdir()
    real.write_text('{"mcpServers": {}}\n', encoding="utf-8")
    link = home / ".cursor" / "mcp.json"
    link.parent.mkdir()
    link.symlink_to(real)
    assert install(["cursor", "--servers", "repo"]) == 0
    assert link.is_symlink() and "onrecord-repo" in json.loads(real.read_text(encoding="utf-8"))["mcpServers"]


def test_a_failed_check_is_a_failure(home: Path, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install(["gemini", "--servers", "repo"], FakeProber(ok=False)) == 1
    captured = capsys.readouterr()
    assert "FAILED  onrecord-repo:" in captured.out and "broke" in captured.out
    assert "a server above does not start" in captured.err


# ------------------------------------------------------------------------- real servers over stdio


def test_install_starts_the_configured_server_and_lists_its_tools(
    home: Path, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["install", "claude-desktop", "--servers", "repo"]) == 0
    out = capsys.readouterr().out
    assert "ok      onrecord-repo: 12 tools (repo 0.1.0)" in out


def test_install_reports_a_server_that_does_not_start_with_what_it_said(
    home: Path, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user_config = config_dir() / "onrecord" / "config.toml"
    user_config.parent.mkdir(parents=True)
    user_config.write_text("[policy]\nnosuch = 1\n", encoding="utf-8")
    assert main(["install", "cursor", "--servers", "repo"]) == 1
    captured = capsys.readouterr()
    assert "FAILED  onrecord-repo:" in captured.out and "stopped before answering" in captured.out
    assert "policy.nosuch" in captured.out  # the server's own message, from its stderr
    assert "`onrecord uninstall cursor`" in captured.err


def test_a_project_install_without_onrecord_on_path_fails_and_says_why(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(home))
    assert main(["install", "claude-code", "--project", "--servers", "repo"]) == 1
    out = capsys.readouterr().out
    assert "'onrecord' is not on PATH" in out and "install onrecord so that `onrecord` is on PATH" in out


def test_probe_reports_a_missing_command_and_a_crashing_one() -> None:
    import anyio

    missing, crashing = anyio.run(
        probe_all,
        [
            Launch("missing", "/nonexistent/onrecord", ["serve", "repo"]),
            Launch("crashing", sys.executable, ["-c", "import sys; sys.exit('no luck here')"]),
        ],
    )
    assert not missing.ok and "no such file" in missing.error
    assert (
        not crashing.ok and "stopped before answering" in crashing.error and "no luck here" in crashing.stderr
    )


def test_probe_times_out_on_a_server_that_never_answers() -> None:
    import anyio

    async def run() -> ProbeResult:
        return await probe(
            Launch("silent", sys.executable, ["-c", "import time; time.sleep(30)"]), timeout_s=1
        )

    result = anyio.run(run)
    assert not result.ok and "within 1 s" in result.error


def test_the_readme_has_a_section_for_each_host() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for host in HOSTS.values():
        assert f"\n### {host.title}\n" in readme, host.title
        assert f"`{host.name}`" in readme
