"""The benchmark suite runs end to end with tiny counts and writes its report.

These tests check that the benchmarks work and produce finite, positive figures. They never
check how fast anything is.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("langchain_openai") is None,
        reason="the benchmarks compare against langchain-openai, from the bench dependency group",
    ),
]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """Run ``python -m benchmarks.run --smoke`` once and return its report and JSON figures."""
    out = tmp_path_factory.mktemp("bench")
    report, figures = out / "benchmarks.md", out / "benchmarks.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-m",
            "benchmarks.run",
            "--smoke",
            "--output",
            str(report),
            "--json",
            str(figures),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Exception ignored" not in completed.stderr, completed.stderr[-3000:]
    return report.read_text(encoding="utf-8"), json.loads(figures.read_text(encoding="utf-8"))


def _summaries(section: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {name: value for name, value in section.items() if isinstance(value, dict)}


def _assert_positive(name: str, summary: dict[str, float]) -> None:
    assert summary["rounds"] > 0, name
    for key in ("median", "p10", "p90"):
        assert math.isfinite(summary[key]), f"{name} {key} is {summary[key]}"
        assert summary[key] > 0, f"{name} {key} is {summary[key]}"


def test_smoke_report_has_sections(smoke_run: tuple[str, dict[str, Any]]) -> None:
    report, _ = smoke_run
    for heading in (
        "# Benchmarks",
        "## Machine",
        "## Targets",
        "## One LangChain call",
        "## In-process cost, without the network",
        "## Stages",
        "### Memory over a long run",
        "### Concurrent tasks",
        "## Startup",
    ):
        assert heading in report


def test_smoke_call_latencies_positive(smoke_run: tuple[str, dict[str, Any]]) -> None:
    _, figures = smoke_run
    calls = figures["calls"]
    assert set(calls["latency"]) == {
        "bare",
        "langchain_floor",
        "chat_openai",
        "model_client",
        "secure_warm",
        "secure_first",
    }
    for name, summary in {**calls["latency"], **calls["ratios"]}.items():
        _assert_positive(name, summary)
    for name, summary in calls["differences"].items():
        assert math.isfinite(summary["median"]), name


def test_smoke_overhead_and_stages_positive(smoke_run: tuple[str, dict[str, Any]]) -> None:
    _, figures = smoke_run
    for name, summary in {**figures["overhead"], **figures["stages"]}.items():
        _assert_positive(name, summary)


def test_smoke_task_rates_positive(smoke_run: tuple[str, dict[str, Any]]) -> None:
    _, figures = smoke_run
    rates = {**figures["throughput"], **figures["concurrency"]["calls_per_second"]}
    for name, summary in _summaries(rates).items():
        _assert_positive(name, summary)


def test_smoke_memory_checkpoints_recorded(smoke_run: tuple[str, dict[str, Any]]) -> None:
    _, figures = smoke_run
    checkpoints = figures["memory"]["checkpoints"]
    assert len(checkpoints) >= 2
    assert checkpoints[-1]["tasks"] == figures["memory"]["tasks"]
    for point in checkpoints:
        assert math.isfinite(point["rss_mib"])
        assert point["rss_mib"] > 0
        assert point["traced_mib"] > 0


def test_smoke_concurrent_grants_match_tasks(smoke_run: tuple[str, dict[str, Any]]) -> None:
    _, figures = smoke_run
    concurrency = figures["concurrency"]
    tasks = concurrency["tasks"] * concurrency["calls_per_second"]["secure"]["rounds"]
    assert concurrency["requests_checked"] == tasks * concurrency["calls_per_task"]
    assert concurrency["mismatches"] == 0
    assert concurrency["missing"] == 0
    assert concurrency["distinct_grants"] == tasks


def test_smoke_startup_times_positive(smoke_run: tuple[str, dict[str, Any]]) -> None:
    _, figures = smoke_run
    for name, summary in figures["startup"].items():
        _assert_positive(name, summary)
    assert figures["import_breakdown"]
