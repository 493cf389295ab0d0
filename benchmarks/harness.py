"""Shared parts of every benchmark: the runtime under test and a description of the machine."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any

import agentlease
from agentlease.audit import AuditLog
from agentlease.grants import LocalBroker
from agentlease.policy import CachingPolicyEngine, CedarEngine, PolicyEngine
from agentlease.routing import Route

__all__ = [
    "MODEL",
    "PROMPT",
    "ROUTE",
    "bench_route",
    "build_runtime",
    "describe_machine",
    "load_average",
    "package_versions",
]

ROUTE = "bench"
"""The name of the one route the benchmarks call."""

MODEL = "bench-model"
"""The model id every variant sends."""

PROMPT = "Say hello in one short sentence."
"""The one short user message of every model call."""

KEY_PACKAGES = (
    "agentlease",
    "agentlease-langchain",
    "langchain-core",
    "langchain-openai",
    "openai",
    "httpx",
    "pyjwt",
    "cryptography",
    "cedarpy",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "pydantic",
    "orjson",
)


def bench_route(url: str) -> Route:
    """Return the benchmark route: grant-credentialed, cleared for internal data."""
    return Route(
        name=ROUTE,
        base_url=url,
        model=MODEL,
        provider="openai",
        jurisdiction="us",
        clearance="internal",
        groups=("default",),
    )


def build_runtime(
    url: str,
    audit_path: Path,
    *,
    fsync: Any = "flush",
    broker: LocalBroker | None = None,
    policy: PolicyEngine | None = None,
    tracer_provider: Any = None,
    providers: dict[str, Any] | None = None,
) -> agentlease.Runtime:
    """Build the runtime under test: one route, the starter Cedar policies, a JSONL audit file.

    The policy is wrapped in a `CachingPolicyEngine` unless `policy` is given, which is then
    used as it is. Without `tracer_provider`, spans go to the global OpenTelemetry provider,
    which is the no-op API unless the application installs an SDK.
    """
    engine = policy if policy is not None else CachingPolicyEngine(CedarEngine())
    return agentlease.Runtime(
        routes=[bench_route(url)],
        policy=engine,
        broker=broker or LocalBroker(),
        audit=AuditLog.to_file(audit_path, fsync=fsync),
        decision_cache_ttl=0,
        tracer_provider=tracer_provider,
        providers=providers,
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> dict[str, str]:
    """Return the CPU model, core count, Python version and operating system."""
    return {
        "CPU": _cpu_model(),
        "Cores": str(os.cpu_count()),
        "Python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "OS": platform.platform(),
    }


def load_average() -> str:
    """Return the system load averages over 1, 5 and 15 minutes, or "unknown"."""
    try:
        return ", ".join(f"{load:.2f}" for load in os.getloadavg())
    except OSError:
        return "unknown"


def package_versions() -> dict[str, str]:
    """Return the installed version of each key package, or "not installed"."""
    versions: dict[str, str] = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
