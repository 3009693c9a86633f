from __future__ import annotations

import os
from pathlib import Path

import pytest
from mcp import Client

from clients.stdio import server_params
from common.audit import verify_dir
from tests.helpers import all_audit_text, make_repo

pytestmark = pytest.mark.anyio


async def test_deploy_over_stdio_reports_and_never_logs_the_secret(tmp_path: Path) -> None:
    token = "sk_live_" + "9fQ2xLm7Tb4Wc8Nz1Kd5Hr3V"
    root = make_repo(
        tmp_path / "project", {"billing.ini": f"stripe = {token}\n", "Dockerfile": "FROM python\n"}
    )
    async with Client(server_params("deploy", root), mode="legacy") as client:
        assert client.server_info is not None and client.server_info.name == "deploy"
        tools = {t.name for t in (await client.list_tools()).tools}
        assert tools == {
            "readiness_report",
            "scan_secrets",
            "check_dockerfile",
            "check_config",
            "check_http",
            "release_checklist",
        }
        result = await client.call_tool(
            "readiness_report", {"checks": ["secrets", "dockerfile", "worktree_clean"]}
        )
        assert result.is_error is False and result.structured_content is not None
        report = result.structured_content
        assert report["verdict"] == "fail" and report["blocking"] == ["secrets", "dockerfile"]
    state = Path(os.environ["ONRECORD_STATE_DIR"])
    assert token not in all_audit_text(state) and token not in str(report)
    reports = verify_dir(state / "audit")
    assert len(reports) == 1 and reports[0].ok
