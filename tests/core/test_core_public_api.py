"""The core's public API: exported names are pinned, sorted and importable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import agentlease

EXPECTED = [
    "AgentleaseError",
    "Capabilities",
    "CedarEngine",
    "ConfigurationError",
    "Decision",
    "DevelopmentIdentity",
    "Grant",
    "GrantError",
    "GrantVerifier",
    "LocalBroker",
    "ModelClient",
    "NoPermittedRouteError",
    "OIDCTokenFile",
    "PolicyDenied",
    "ProviderError",
    "Route",
    "Runtime",
    "Task",
    "TaskError",
    "ToolGuard",
    "UnknownRouteError",
    "WorkloadIdentity",
    "__version__",
    "configure",
    "current_grant",
    "current_task",
    "get_runtime",
    "task",
]


def test_all_is_pinned() -> None:
    assert agentlease.__all__ == EXPECTED


def test_all_names_resolve() -> None:
    for name in agentlease.__all__:
        assert getattr(agentlease, name) is not None


def test_core_imports_no_framework() -> None:
    code = (
        "import sys, agentlease, agentlease.testing, agentlease.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('langchain_core', 'langchain', 'llama_index', 'langgraph')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_package_is_typed() -> None:
    assert (Path(agentlease.__file__).parent / "py.typed").is_file()


def test_errors_share_one_root() -> None:
    from agentlease import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.AgentleaseError)
