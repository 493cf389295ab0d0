"""Span names, operation names and attribute names that agentlease's telemetry uses.

The ``gen_ai.*``, ``server.*`` and ``error.type`` names follow the OpenTelemetry semantic
conventions for generative AI, which are still in development status. They are pinned here
instead of imported from `opentelemetry-semantic-conventions`, so a rename upstream cannot
change agentlease's spans without a change to this module. The ``agentlease.*`` names are
agentlease's own.

No attribute here carries prompt or completion text, tool arguments, results or tokens.
"""

from __future__ import annotations

__all__ = [
    "AGENTLEASE_CREDENTIAL_MODE",
    "AGENTLEASE_DATA_CLASS",
    "AGENTLEASE_GRANTS_REVOKED",
    "AGENTLEASE_GRANT_AUDIENCE",
    "AGENTLEASE_GRANT_EXPIRES_AT",
    "AGENTLEASE_GRANT_JTI",
    "AGENTLEASE_IDENTITY",
    "AGENTLEASE_IDENTITY_VERIFIED",
    "AGENTLEASE_PARENT_TASK_ID",
    "AGENTLEASE_POLICY_DECISION",
    "AGENTLEASE_POLICY_IDS",
    "AGENTLEASE_POLICY_REASON",
    "AGENTLEASE_ROUTE",
    "AGENTLEASE_TASK_ID",
    "AGENTLEASE_TOOL_RISK",
    "DECISION_ALLOW",
    "DECISION_DENY",
    "ERROR_TYPE",
    "EVENT_GRANT_MINT",
    "EVENT_GRANT_REVOKE",
    "EVENT_POLICY_DECISION",
    "EVENT_ROUTE_FALLBACK",
    "GEN_AI_AGENT_NAME",
    "GEN_AI_CONVERSATION_ID",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_MAX_TOKENS",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_RESPONSE_FINISH_REASONS",
    "GEN_AI_RESPONSE_MODEL",
    "GEN_AI_TOOL_CALL_ID",
    "GEN_AI_TOOL_NAME",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "OP_CHAT",
    "OP_EXECUTE_TOOL",
    "OP_INVOKE_AGENT",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "TRACER_NAME",
]

TRACER_NAME = "agentlease"
"""The instrumentation scope name of every agentlease span."""

# Operation names (`gen_ai.operation.name`), which also start each span name:
# "invoke_agent {agent}", "chat {model}", "execute_tool {tool}".
OP_INVOKE_AGENT = "invoke_agent"
OP_CHAT = "chat"
OP_EXECUTE_TOOL = "execute_tool"

# OpenTelemetry GenAI attributes.
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"

# General OpenTelemetry attributes.
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"

# agentlease attributes.
AGENTLEASE_TASK_ID = "agentlease.task.id"
AGENTLEASE_PARENT_TASK_ID = "agentlease.task.parent_id"
AGENTLEASE_DATA_CLASS = "agentlease.data_class"
AGENTLEASE_IDENTITY = "agentlease.identity.id"
AGENTLEASE_IDENTITY_VERIFIED = "agentlease.identity.verified"
AGENTLEASE_ROUTE = "agentlease.route"
AGENTLEASE_POLICY_DECISION = "agentlease.policy.decision"
"""Either `DECISION_ALLOW` or `DECISION_DENY`."""
AGENTLEASE_POLICY_IDS = "agentlease.policy.ids"
"""The ids of the policies that decided, as a string array."""
AGENTLEASE_POLICY_REASON = "agentlease.policy.reason"
AGENTLEASE_CREDENTIAL_MODE = "agentlease.credential.mode"
"""``grant``, ``exchange``, ``api_key`` or ``unmediated``."""
AGENTLEASE_GRANT_JTI = "agentlease.grant.jti"
AGENTLEASE_GRANT_AUDIENCE = "agentlease.grant.audience"
AGENTLEASE_GRANT_EXPIRES_AT = "agentlease.grant.expires_at"
"""Seconds since the Unix epoch."""
AGENTLEASE_GRANTS_REVOKED = "agentlease.grant.revoked_count"
"""How many grants a task revoked when it ended."""
AGENTLEASE_TOOL_RISK = "agentlease.tool.risk"

DECISION_ALLOW = "allow"
DECISION_DENY = "deny"

# Span event names.
EVENT_POLICY_DECISION = "agentlease.policy.decision"
EVENT_GRANT_MINT = "agentlease.grant.mint"
EVENT_GRANT_REVOKE = "agentlease.grant.revoke"
EVENT_ROUTE_FALLBACK = "agentlease.route.fallback"
