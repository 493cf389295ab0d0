"""Run the benchmark suite and write its report.

Usage, from the repository root::

    uv run --frozen python -m benchmarks.run                 # full run, writes docs/benchmarks.md
    uv run --frozen python -m benchmarks.run --smoke --output /tmp/b.md --json /tmp/b.json

The full run took about six minutes on a two-core AMD EPYC virtual machine, the machine that
docs/benchmarks.md describes. ``--smoke`` runs every benchmark with tiny counts in a few
seconds, and its numbers only show that the benchmarks work.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.calls import run_calls
from benchmarks.harness import describe_machine, load_average, package_versions
from benchmarks.overhead import run_overhead
from benchmarks.report import render
from benchmarks.results import Results, evaluate_targets
from benchmarks.server import ROOT, ServerProcess
from benchmarks.stages import run_stages
from benchmarks.startup import IMPORTS, run_startup
from benchmarks.tasks import run_concurrency, run_memory, run_throughput

__all__ = ["FULL", "SMOKE", "Profile", "main", "run_suite"]

logger = logging.getLogger("benchmarks")


@dataclass(frozen=True, slots=True)
class Profile:
    """The counts of one kind of run."""

    name: str
    call_rounds: int
    calls: int
    call_warmup: int
    overhead_rounds: int
    overhead_calls: int
    stage_rounds: int
    stage_calls: int
    throughput_rounds: int
    throughput_tasks: int
    memory_tasks: int
    memory_checkpoints: int
    memory_warmup: int
    concurrency_rounds: int
    concurrent_tasks: int
    concurrent_calls: int
    startup_rounds: int
    startup_imports: tuple[str, ...]


FULL = Profile(
    name="full",
    call_rounds=20,
    calls=150,
    call_warmup=100,
    overhead_rounds=15,
    overhead_calls=300,
    stage_rounds=15,
    stage_calls=300,
    throughput_rounds=10,
    throughput_tasks=100,
    memory_tasks=100_000,
    memory_checkpoints=10,
    memory_warmup=1_000,
    concurrency_rounds=4,
    concurrent_tasks=200,
    concurrent_calls=5,
    startup_rounds=5,
    startup_imports=tuple(IMPORTS),
)

SMOKE = Profile(
    name="smoke",
    call_rounds=2,
    calls=3,
    call_warmup=2,
    overhead_rounds=2,
    overhead_calls=5,
    stage_rounds=2,
    stage_calls=5,
    throughput_rounds=2,
    throughput_tasks=3,
    memory_tasks=200,
    memory_checkpoints=2,
    memory_warmup=20,
    concurrency_rounds=1,
    concurrent_tasks=4,
    concurrent_calls=2,
    startup_rounds=1,
    startup_imports=("agentlease",),
)


def run_suite(profile: Profile, work_dir: Path) -> Results:
    """Run every benchmark with the counts of `profile`, writing scratch files to `work_dir`."""
    started = time.perf_counter()
    start_time = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_at_start = load_average()

    logger.info("startup: import times in fresh interpreters")
    startup, breakdown = run_startup(
        rounds=profile.startup_rounds, labels=list(profile.startup_imports)
    )

    logger.info("stages")
    stages = run_stages(
        work_dir,
        rounds=profile.stage_rounds,
        calls=profile.stage_calls,
        warmup=profile.stage_calls,
    )

    logger.info("in-process cost without the network")
    overhead, overhead_differences = run_overhead(
        work_dir,
        rounds=profile.overhead_rounds,
        calls=profile.overhead_calls,
        warmup=profile.overhead_calls,
    )

    with ServerProcess() as server:
        logger.info("one LangChain call, model server at %s", server.url)
        calls = run_calls(
            server,
            work_dir,
            rounds=profile.call_rounds,
            calls=profile.calls,
            warmup=profile.call_warmup,
        )
        logger.info("task throughput")
        throughput = run_throughput(
            server,
            work_dir,
            rounds=profile.throughput_rounds,
            tasks=profile.throughput_tasks,
            warmup=max(1, profile.throughput_tasks // 5),
        )
        logger.info("concurrent tasks")
        concurrency = run_concurrency(
            server,
            work_dir,
            rounds=profile.concurrency_rounds,
            tasks=profile.concurrent_tasks,
            calls=profile.concurrent_calls,
        )

    logger.info("memory over %d tasks", profile.memory_tasks)
    memory = run_memory(
        work_dir,
        tasks=profile.memory_tasks,
        checkpoints=profile.memory_checkpoints,
        warmup=profile.memory_warmup,
    )

    machine = describe_machine()
    machine["Load average (1, 5, 15 min), start"] = load_at_start
    machine["Load average (1, 5, 15 min), end"] = load_average()
    results = Results(
        profile=profile.name,
        started=start_time,
        machine=machine,
        versions=package_versions(),
        calls=calls,
        overhead=overhead,
        overhead_differences=overhead_differences,
        stages=stages,
        throughput=throughput,
        memory=memory,
        concurrency=concurrency,
        startup=startup,
        import_breakdown=breakdown,
    )
    results.targets = evaluate_targets(results)
    results.duration_s = time.perf_counter() - started
    return results


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the suite and write the report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="run every benchmark with tiny counts")
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "docs" / "benchmarks.md",
        help="where to write the Markdown report (default: docs/benchmarks.md)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logger.setLevel(logging.INFO)

    profile = SMOKE if args.smoke else FULL
    with tempfile.TemporaryDirectory(prefix="agentlease-bench-") as scratch:
        results = run_suite(profile, Path(scratch))

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(results), encoding="utf-8")
    logger.info("wrote %s", args.output)
    if args.json is not None:
        args.json.write_text(json.dumps(results.to_json(), indent=2), encoding="utf-8")
        logger.info("wrote %s", args.json)
    for target in results.targets:
        logger.info("%s: %s (%s)", "met" if target.met else "MISSED", target.name, target.measured)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
