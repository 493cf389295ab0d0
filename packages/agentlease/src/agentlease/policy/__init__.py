"""Policy: who may invoke which model route and call which tool, for which task.

An application sends a batch of `AccessRequest`s to a `PolicyEngine` and receives one
`Decision` per request. `CedarEngine` is the embedded default: it loads the shipped starter
policies and schema unless given its own. `CachingPolicyEngine` wraps any engine and answers
repeated requests from memory.
"""

from __future__ import annotations

from agentlease.policy.cache import CachingPolicyEngine
from agentlease.policy.cedar import CedarEngine, shipped_schema, starter_policies
from agentlease.policy.model import (
    TOOL_RISKS,
    AccessRequest,
    Decision,
    PolicyEngine,
    Resource,
    Subject,
)

__all__ = [
    "TOOL_RISKS",
    "AccessRequest",
    "CachingPolicyEngine",
    "CedarEngine",
    "Decision",
    "PolicyEngine",
    "Resource",
    "Subject",
    "shipped_schema",
    "starter_policies",
]
