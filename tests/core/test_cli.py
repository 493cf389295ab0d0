"""The agentlease command: routes, policy check, and audit review of a real run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import agentlease
from agentlease.audit import AuditLog, JsonlAuditSink
from agentlease.cli import main
from agentlease.messages import ChatRequest, Message
from agentlease.testing import ModelServer

CONFIG = """
[[routes]]
name = "local"
base_url = "http://127.0.0.1:9/v1"
model = "local-model"
clearance = "confidential"
groups = ["default"]
"""


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentlease.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def test_routes_lists_configured_routes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "agentlease.toml").write_text(CONFIG, encoding="utf-8")
    assert main(["routes", "--config", str(tmp_path / "agentlease.toml")]) == 0
    out = capsys.readouterr().out
    assert "local\tlocal-model" in out
    assert "clearance=confidential" in out


def test_policy_check_accepts_starter_policies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "agentlease.toml").write_text(CONFIG, encoding="utf-8")
    assert main(["policy", "check", "--config", str(tmp_path / "agentlease.toml")]) == 0
    assert "Policies valid" in capsys.readouterr().out


def test_policy_check_rejects_invalid_policy(tmp_path: Path) -> None:
    (tmp_path / "bad.cedar").write_text(
        'permit(principal, action, resource) when { resource.nope == "x" };', encoding="utf-8"
    )
    config = tmp_path / "agentlease.toml"
    config.write_text(CONFIG + '\n[policy]\npath = "bad.cedar"\n', encoding="utf-8")
    result = run_cli("policy", "check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "bad.cedar" in result.stderr


def test_audit_show_and_verify_a_real_run(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.reset()
    base = model_server.url
    path = tmp_path / "audit.jsonl"
    runtime = agentlease.Runtime(
        routes=[agentlease.Route(name="local", base_url=base, model="m", groups=("default",))],
        audit=AuditLog(JsonlAuditSink(path)),
    )
    try:
        with agentlease.task("reviewed", runtime=runtime):
            agentlease.ModelClient("default").chat(
                ChatRequest(messages=[Message(role="user", content="hi")])
            )
    finally:
        runtime.close()

    verified = run_cli("audit", "verify", str(path), cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    shown = run_cli("audit", "show", str(path), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "task=reviewed" in shown.stdout
    assert "model.call" in shown.stdout
    assert "grant.revoke" in shown.stdout

    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:2] + lines[3:]) + "\n", encoding="utf-8")
    broken = run_cli("audit", "verify", str(path), cwd=tmp_path)
    assert broken.returncode == 1
    assert "line 3" in broken.stdout + broken.stderr
