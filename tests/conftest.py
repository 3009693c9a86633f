from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import GIT_IDENTITY


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state, user config and (absent) managed policy."""
    monkeypatch.setenv("ONRECORD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ONRECORD_MANAGED_POLICY", str(tmp_path / "managed-policy.toml"))
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    return tmp_path
