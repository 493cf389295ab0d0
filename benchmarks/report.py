"""Render a benchmark run as the Markdown page docs/benchmarks.md."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping

from benchmarks.calls import VARIANTS
from benchmarks.overhead import OVERHEAD_VARIANTS
from benchmarks.results import Results
from benchmarks.stages import STAGES
from benchmarks.stats import Summary
from benchmarks.tasks import CONCURRENCY_VARIANTS

__all__ = ["render"]


def _paragraph(*sentences: str) -> list[str]:
    """Return prose wrapped at 96 columns, followed by a blank line."""
    return [*textwrap.wrap(" ".join(sentences), width=96, break_on_hyphens=False), ""]


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _spread(summary: Summary, digits: int = 1) -> str:
    return f"{summary.p10:.{digits}f} to {summary.p90:.{digits}f}"


def _summary_rows(
    summaries: Mapping[str, Summary], labels: Mapping[str, str], digits: int = 1
) -> list[list[str]]:
    return [
        [labels.get(key, key), f"{value.median:.{digits}f}", _spread(value, digits)]
        for key, value in summaries.items()
    ]


def _header(results: Results) -> list[str]:
    lines = ["# Benchmarks", ""]
    lines += _paragraph(
        "What agentlease costs per call, per stage and per task, next to the same work done",
        "without it. The benchmark suite in `benchmarks/` generates this page: run",
        "`python -m nox -s bench` (about six minutes on the two-core machine below), or",
        "`uv run --frozen python -m benchmarks.run` from the repository root.",
    )
    lines += _paragraph(
        "Absolute times vary between machines, Python versions and load. Ratios and",
        "differences between variants measured in the same run carry over better, so the",
        "targets are checked on ratios and differences.",
    )
    lines += [
        "## Method",
        "",
        "- Every duration is taken with `time.perf_counter_ns` around one call.",
        "- Each benchmark warms up first, then runs rounds. Within a round the variants take",
        "  turns in chunks of a few calls (10 over the network, 20 in process, 50 for stages)",
        "  in a rotating order, so load from elsewhere on the machine falls on every variant",
        "  alike. A round yields one median per variant, and ratios and differences are",
        "  computed round by round from those medians.",
        "- Each figure is the median over rounds, with the 10th to 90th percentile over",
        "  rounds as its spread.",
        "- The model server is `agentlease.testing.ModelServer` with its default responder,",
        "  in a separate process on 127.0.0.1, so its work never holds the GIL of the client",
        "  being measured. It shares the machine's cores with the client.",
        "- The benchmarks share the machine with whatever else runs on it. The load averages",
        "  in the machine table show how busy it was. The benchmark itself keeps up to two",
        "  processes busy while the model server runs.",
        "- The runtime under test has one grant-credentialed route, the starter Cedar policies",
        "  behind the decision cache, an in-process `LocalBroker`, and an audit log in a JSONL",
        "  file with the default fsync mode (`flush`). Spans go to the OpenTelemetry no-op API",
        "  unless a row says otherwise.",
        "",
    ]
    lines += _paragraph(
        f"Run: profile `{results.profile}`, started {results.started}, took",
        f"{results.duration_s:.0f} s.",
    )
    lines += ["## Machine", ""]
    lines += _table(["", ""], [[key, value] for key, value in results.machine.items()])
    lines += _table(
        ["Package", "Version"], [[name, version] for name, version in results.versions.items()]
    )
    return lines


def _targets(results: Results) -> list[str]:
    lines = ["## Targets", ""]
    rows = [
        [target.name, target.measured, "met" if target.met else "**missed**"]
        for target in results.targets
    ]
    return lines + _table(["Target", "Measured", "Result"], rows)


def _headline(results: Results) -> list[str]:
    calls = results.calls
    lines = ["## One LangChain call", ""]
    lines += _paragraph(
        "`.invoke` with one short user message, through each client, against the same",
        f"server: {calls.rounds} rounds of {calls.calls_per_round} calls per variant. The",
        "first-call variant opens a new task for every call, outside the timed call, and",
        "mints a grant inside it. The decision cache belongs to the runtime and is keyed by",
        "the task's context, so it is warm for new tasks too. `ChatOpenAI` is pointed at the",
        "server with a dummy key.",
    )
    lines += _table(
        ["Variant", "Median µs", "p10 to p90 µs"], _summary_rows(calls.latency, VARIANTS)
    )
    lines += _table(["Ratio", "Median", "p10 to p90"], _summary_rows(calls.ratios, {}, 2))
    lines += _table(
        ["Difference", "Median µs", "p10 to p90 µs"], _summary_rows(calls.differences, {})
    )
    lines += _paragraph(
        f"In a final check the server recorded {calls.requests_checked} requests of the warm",
        f"secured variant, carrying {calls.grants_seen} distinct grant(s): one cached grant",
        "serves every call of a task.",
    )
    return lines


def _overhead(results: Results) -> list[str]:
    lines = ["## In-process cost, without the network", ""]
    lines += _paragraph(
        "The same calls with the provider replaced by one that returns a canned response at",
        "once, after running the route's `httpx.Auth` so that the grant is still read per",
        "request. The loopback round trip and its noise are gone, so what remains is the",
        "work of each layer.",
    )
    lines += _table(
        ["Variant", "Median µs", "p10 to p90 µs"],
        _summary_rows(results.overhead, OVERHEAD_VARIANTS),
    )
    lines += _table(
        ["Difference", "Median µs", "p10 to p90 µs"],
        _summary_rows(results.overhead_differences, {}),
    )
    return lines


def _where_time_goes(results: Results) -> list[str]:
    overhead = results.overhead
    stages = results.stages
    floor = overhead["floor"].median
    core = overhead["client_warm"].median
    secure = overhead["secure_warm"].median

    lines = ["## Where the time goes", ""]
    lines += _paragraph(
        "A warm `SecureChatModel.invoke` without the network splits into LangChain's own",
        "work (the floor), agentlease's core (`ModelClient.chat`), and the rest: the",
        "adapter's conversions plus the cost of running both code paths in one call.",
    )
    lines += _table(
        ["Part", "µs"],
        [
            ["LangChain's own work (floor)", f"{floor:.1f}"],
            ["agentlease core, warm (`ModelClient.chat`)", f"{core:.1f}"],
            ["adapter and interaction (the rest)", f"{secure - floor - core:.1f}"],
            ["total (`SecureChatModel.invoke`)", f"{secure:.1f}"],
        ],
    )

    parts = {
        "audit append (one `model.call` record)": stages["audit"].median,
        "chat span, no-op API": stages["span_noop"].median,
        "Cedar decision, cached": stages["cedar_cached"].median,
        "cached grant": stages["grant_cached"].median,
    }
    rows = [[name, f"{value:.1f}"] for name, value in parts.items()]
    rest = core - sum(parts.values())
    rows.append(["the rest: routing, translation, auth, audit record objects", f"{rest:.1f}"])
    lines += _paragraph(
        "The core's warm path, split with the stage figures. Stages run in tight loops with",
        "warm CPU caches, so inside a full call each costs more than its stage figure, and",
        "the last row includes that difference.",
    )
    lines += _table(["Core part", "µs"], rows)

    first_extra = results.overhead_differences["first call over warm call (ModelClient)"].median
    lines += _paragraph(
        f"A task's first call costs {first_extra:.1f} µs more than a warm one. It mints a",
        f"grant (stage: {stages['mint'].median:.1f} µs, of which the ES256 signature takes",
        f"about {stages['floor_sign'].median:.1f} µs) and appends a `grant.mint` audit record.",
    )
    return lines


def _stages(results: Results) -> list[str]:
    lines = ["## Stages", ""]
    lines += _paragraph(
        "Each stage on its own, timed per call. The floor rows do the same cryptography",
        "directly with `cryptography` and PyJWT. The SDK span row uses a `TracerProvider`",
        "with no span processor, so it covers creating and ending a recording span but no",
        "export. The audit row appends to a JSONL file with one `write` per record and no",
        "fsync, which is what the default `flush` mode does until a top-level task ends.",
    )
    return lines + _table(
        ["Stage", "Median µs", "p10 to p90 µs"], _summary_rows(results.stages, STAGES, 2)
    )


def _throughput(results: Results) -> list[str]:
    lines = ["## Tasks", "", "### Throughput", ""]
    lines += _paragraph(
        "Tasks per second, each opening a task, making one `SecureChatModel.invoke` and",
        "closing it. Under the default audit mode (`flush`) a top-level task fsyncs the",
        "audit file when it ends. The second row turns fsync off to show its share.",
    )
    labels = {"flush": "audit fsync `flush` (default)", "never": "audit fsync `never`"}
    return lines + _table(
        ["Audit mode", "Median tasks/s", "p10 to p90"],
        _summary_rows(results.throughput, labels, 0),
    )


def _memory(results: Results) -> list[str]:
    memory = results.memory
    lines = ["### Memory over a long run", ""]
    lines += _paragraph(
        f"{memory.tasks:,} tasks, each with its own name, that open, make one policy",
        "decision through the decision cache, mint a grant and close, with no model call.",
        "The broker, its revocation list and the decision cache read a fake clock that moves",
        f"{memory.seconds_per_task:g} s per task. A task's revocation entry is kept for the",
        f"broker's maximum grant lifetime ({memory.max_lifetime} s) plus its leeway",
        f"({memory.leeway} s), and a decision is cached for {memory.decision_ttl:g} s. Both",
        "therefore expire after a few dozen tasks instead of minutes of real time.",
        "`tracemalloc` runs for the whole measured part and slows it down, and the rate",
        "column includes that.",
    )

    rows = [
        [
            f"{point.tasks:,}",
            f"{point.rss_mib:.1f}",
            f"{point.traced_mib:.2f}",
            str(point.revocations),
            str(point.cached_decisions),
            f"{point.tasks_per_second:.0f}" if point.tasks_per_second else "",
        ]
        for point in memory.checkpoints
    ]
    header = ["Tasks", "RSS MiB", "Traced MiB", "Revocation entries", "Cached decisions"]
    lines += _table([*header, "Tasks/s"], rows)

    lines += _paragraph(
        "The revocation list stays bounded because each write prunes expired entries once",
        "the list has doubled in size or a minute has passed. The decision cache stops at",
        f"its maximum size ({memory.decision_maxsize}). An expired decision leaves it when",
        "the cache evicts its least recently used entry or when the same request comes",
        "again, not when it expires.",
    )
    return lines


def _concurrency(results: Results) -> list[str]:
    concurrency = results.concurrency
    lines = ["### Concurrent tasks", ""]
    lines += _paragraph(
        f"{concurrency.tasks} asyncio tasks on one event loop, each making",
        f"{concurrency.calls_per_task} calls. The secured variant runs each inside its own",
        "agentlease task. The bare variant uses an `httpx.AsyncClient` with the connection",
        "pool limits of agentlease's providers, and `ChatOpenAI` uses its own client. The",
        "server, one Python process with a thread per connection, limits all three, so",
        "these rates compare the clients only roughly.",
    )
    lines += _table(
        ["Variant", "Median calls/s", "p10 to p90"],
        _summary_rows(concurrency.calls_per_second, CONCURRENCY_VARIANTS, 0),
    )
    lines += _paragraph(
        "Grant isolation: every request of the secured variant names its task in the prompt.",
        "The server recorded each Authorization header. Each grant was verified (signature,",
        "issuer, audience) and its `task_id` compared with the task that sent the request:",
        f"{concurrency.requests_checked} requests verified, {concurrency.mismatches}",
        f"mismatched, {concurrency.missing} missing, {concurrency.distinct_grants} distinct",
        "grants.",
    )
    return lines


def _startup(results: Results) -> list[str]:
    lines = ["## Startup", ""]
    lines += _paragraph(
        "Import time in a fresh interpreter, in milliseconds, interpreter startup excluded.",
        "Bytecode is cached, as after a normal install, except in the row that says",
        "otherwise. httpx imports its command-line interface, and with it rich and click,",
        "whenever those are installed. The benchmark environment has them through the test",
        "tools, and the row without them matches an install of agentlease alone.",
    )
    lines += _table(["Import", "Median ms", "p10 to p90 ms"], _summary_rows(results.startup, {}, 0))
    lines += _paragraph(
        "Where `import agentlease` spends its time: self time per package in one run with",
        "`python -X importtime`, which adds overhead of its own.",
    )
    rows = [[name, f"{ms:.0f}"] for name, ms in results.import_breakdown]
    return lines + _table(["Package", "ms"], rows)


def render(results: Results) -> str:
    """Return the Markdown report of a run."""
    lines = _header(results)
    lines += _targets(results)
    lines += _headline(results)
    lines += _overhead(results)
    lines += _where_time_goes(results)
    lines += _stages(results)
    lines += _throughput(results)
    lines += _memory(results)
    lines += _concurrency(results)
    lines += _startup(results)
    return "\n".join(lines).rstrip() + "\n"
