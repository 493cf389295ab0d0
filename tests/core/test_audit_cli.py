"""The ``agentlease audit`` commands: verify, list and show."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from agentlease.audit import AuditLog, DecisionInfo
from agentlease.audit.cli import add_audit_commands, run_audit_command

ACTOR = "spiffe://example.org/agent"


class StepClock:
    def __init__(self) -> None:
        self.now = 1767225600.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentlease")
    add_audit_commands(parser.add_subparsers(dest="command"))
    return parser


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    with AuditLog.to_file(path, chain_id="chain-1", clock=StepClock()) as log:
        log.append(session_id="task-parent", task_name="report", action="task.start", actor=ACTOR)
        log.append(
            session_id="task-child",
            parent_session_id="task-parent",
            task_name="search",
            action="tool.call",
            actor=ACTOR,
            resource="tool:delete_files",
            outcome="denied",
            decision=DecisionInfo(allowed=False, policy_ids=("high-risk",), reason="unverified"),
        )
        log.append(session_id="task-parent", task_name="report", action="task.end", actor=ACTOR)
    return path


def run(parser: argparse.ArgumentParser, *argv: str) -> int:
    return run_audit_command(parser.parse_args(["audit", *argv]))


def break_second_line(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[1] = lines[1].replace('"tool:delete_files"', '"tool:read_files"')
    path.write_text("\n".join(lines), encoding="utf-8")


def test_verify_prints_summary(
    parser: argparse.ArgumentParser, log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(parser, "verify", str(log_path))

    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith(f"OK {log_path}: 3 records in 2 sessions, chain chain-1, last hash ")
    assert out.count("\n") == 1


def test_verify_broken_names_line(
    parser: argparse.ArgumentParser, log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    break_second_line(log_path)

    status = run(parser, "verify", str(log_path))

    err = capsys.readouterr().err
    assert status == 1
    assert f"{log_path} line 2:" in err
    assert "evidence" in err


def test_verify_missing_file(
    parser: argparse.ArgumentParser, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(parser, "verify", str(tmp_path / "missing.jsonl"))

    assert status == 2
    assert "cannot read" in capsys.readouterr().err


def test_list_prints_one_line_per_session(
    parser: argparse.ArgumentParser, log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(parser, "list", str(log_path))

    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines == [
        "task-parent  2026-01-01T00:00:01.000000Z  records=2  denied=0  errors=0  "
        "parent=-  task=report",
        "task-child  2026-01-01T00:00:02.000000Z  records=1  denied=1  errors=0  "
        "parent=task-parent  task=search",
    ]


def test_show_prints_tree(
    parser: argparse.ArgumentParser, log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(parser, "show", str(log_path))

    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[0] == f"session task-parent  task=report  actor={ACTOR}"
    assert lines[2] == f"├── session task-child  task=search  actor={ACTOR}"
    assert "DENY [high-risk]" in lines[3]


def test_show_session_by_prefix(
    parser: argparse.ArgumentParser, log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(parser, "show", str(log_path), "--session", "task-c")

    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[0] == f"session task-child  task=search  actor={ACTOR}"
    assert len(lines) == 2


def test_show_ambiguous_session(
    parser: argparse.ArgumentParser, log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(parser, "show", str(log_path), "--session", "task-")

    assert status == 2
    assert "matches no single session" in capsys.readouterr().err


def test_show_broken_log_warns(
    parser: argparse.ArgumentParser, log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    break_second_line(log_path)

    status = run(parser, "show", str(log_path))

    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.startswith("WARNING the records below may have been altered")
    assert "tool:read_files" in captured.out


def test_show_empty_log(
    parser: argparse.ArgumentParser, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.jsonl"
    path.touch()

    status = run(parser, "show", str(path))

    assert status == 0
    assert capsys.readouterr().out == f"{path} contains no records.\n"


def test_audit_without_command(
    parser: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(parser)

    assert status == 2
    assert "choose a command" in capsys.readouterr().err


def test_parsed_args_carry_handler(parser: argparse.ArgumentParser, log_path: Path) -> None:
    args = parser.parse_args(["audit", "list", str(log_path)])

    assert args.func is run_audit_command
    assert args.audit_command == "list"


def test_agentlease_command_verifies(log_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "agentlease.cli", "audit", "verify", str(log_path)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("OK ")
