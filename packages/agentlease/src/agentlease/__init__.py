"""agentlease: one identity plane, one policy engine and short-lived grants for AI agents.

Open a task, make model and tool calls inside it, and every call is routed by policy, carries
a grant scoped to the task, and lands in one audit session::

    import agentlease

    with agentlease.task("research", data_class="confidential"):
        ...  # model and tool calls
"""

from agentlease._version import __version__
from agentlease.client import ModelClient
from agentlease.errors import (
    AgentleaseError,
    ConfigurationError,
    GrantError,
    NoPermittedRouteError,
    PolicyDenied,
    ProviderError,
    TaskError,
    UnknownRouteError,
)
from agentlease.grants import Grant, GrantVerifier, LocalBroker
from agentlease.identity import DevelopmentIdentity, OIDCTokenFile, WorkloadIdentity
from agentlease.policy import CedarEngine, Decision
from agentlease.routing import Capabilities, Route
from agentlease.runtime import Runtime, configure, get_runtime
from agentlease.task import Task, current_task, task
from agentlease.tools import ToolGuard, current_grant

__all__ = [
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
