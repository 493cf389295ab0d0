"""The audit record: one event of an audit session, linked into a SHA-256 hash chain.

A record carries metadata only. Credentials appear as their `jti`, key id, audience and
expiry, never as the token. Tool arguments and results appear as hashes (see
`agentlease.audit.hashing`). Prompt and completion text is not a field of the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, Field

from agentlease.errors import AgentleaseError

__all__ = [
    "GENESIS_HASH",
    "SCHEMA_VERSION",
    "AuditRecord",
    "CredentialInfo",
    "CredentialMode",
    "DecisionInfo",
    "DecisionLike",
    "ErrorInfo",
    "GrantLike",
    "Outcome",
    "UsageInfo",
    "UsageLike",
    "exception_type_name",
]

SCHEMA_VERSION = 1
"""The record schema version written by this release."""

GENESIS_HASH = "0" * 64
"""The `prev_hash` of the first record of a chain."""

MAX_ERROR_MESSAGE_CHARS = 500
"""Error messages longer than this are cut, so one failure cannot flood the log."""

Outcome = Literal["ok", "denied", "error", "cancelled"]
CredentialMode = Literal["grant", "api_key", "exchange", "unmediated"]
_CREDENTIAL_MODES = frozenset(("grant", "api_key", "exchange", "unmediated"))

_HEX64 = r"^[0-9a-f]{64}$"


class DecisionLike(Protocol):
    """Any policy decision: `agentlease.policy.Decision` and look-alikes."""

    @property
    def allowed(self) -> bool: ...
    @property
    def policy_ids(self) -> Sequence[str]: ...
    @property
    def reason(self) -> str: ...


class GrantLike(Protocol):
    """Any grant: `agentlease.grants.Grant` and look-alikes."""

    @property
    def jti(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def audience(self) -> str: ...
    @property
    def expires_at(self) -> int: ...


class UsageLike(Protocol):
    """Any token count: `agentlease.messages.Usage` and look-alikes."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def total_tokens(self) -> int: ...


_ModelT = TypeVar("_ModelT", bound=BaseModel)


def construct_trusted(cls: type[_ModelT], **fields: Any) -> _ModelT:
    """Build a model from values that are already valid, without pydantic validation.

    NOTE: this sets the same instance attributes as `BaseModel.model_construct` in pydantic 2,
    at a fraction of its cost, and needs every field passed. Tests compare the results with
    validated models.
    """
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", fields)
    object.__setattr__(model, "__pydantic_fields_set__", set(fields))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


class DecisionInfo(BaseModel, frozen=True, extra="forbid"):
    """A policy decision as the audit log records it.

    Attributes:
        allowed: Whether the policy allowed the request.
        policy_ids: The ids of the policies that decided.
        reason: The reason the policies gave.
    """

    allowed: bool
    policy_ids: tuple[str, ...] = ()
    reason: str = ""

    @classmethod
    def from_decision(cls, decision: DecisionLike) -> DecisionInfo:
        """Copy a policy engine's decision (any object with `allowed`, `policy_ids`, `reason`)."""
        # The fields come from typed objects, so validation is skipped on this hot path.
        return construct_trusted(
            cls,
            allowed=bool(decision.allowed),
            policy_ids=tuple(str(i) for i in decision.policy_ids),
            reason=str(decision.reason),
        )


class CredentialInfo(BaseModel, frozen=True, extra="forbid"):
    """The credential a call used, described by its metadata and never by its secret.

    Attributes:
        mode: ``"grant"`` (an agentlease grant), ``"exchange"`` (a provider token obtained by
            token exchange), ``"api_key"`` (a static key: the audited exception path) or
            ``"unmediated"`` (a framework object called with its own credential).
        jti: The grant's JWT id.
        kid: The id of the key that signed the grant.
        aud: The grant's audience.
        exp: The grant's expiry, in seconds since the Unix epoch.
    """

    mode: CredentialMode
    jti: str | None = None
    kid: str | None = None
    aud: str | None = None
    exp: int | None = None

    @classmethod
    def from_grant(cls, grant: GrantLike, *, mode: CredentialMode = "grant") -> CredentialInfo:
        """Describe a grant (any object with `jti`, `key_id`, `audience`, `expires_at`)."""
        if mode not in _CREDENTIAL_MODES:
            return cls(mode=mode, jti=grant.jti)  # raises the validation error
        return construct_trusted(
            cls,
            mode=mode,
            jti=str(grant.jti),
            kid=str(grant.key_id),
            aud=str(grant.audience),
            exp=int(grant.expires_at),
        )


class ErrorInfo(BaseModel, frozen=True, extra="forbid"):
    """The error a call ended with.

    Attributes:
        type: The exception's class name, qualified by its module unless it is a builtin.
        message: The exception's message, cut to 500 characters; empty when withheld.
    """

    type: str
    message: str = ""

    @classmethod
    def from_exception(
        cls, exc: BaseException, *, include_message: bool | None = None
    ) -> ErrorInfo:
        """Describe an exception.

        By default the message is kept only for agentlease's own exceptions, whose messages
        are written to leave out secrets and prompt text. Messages of other exceptions can
        quote anything the failing code saw, so they are withheld unless `include_message` is
        true.
        """
        if include_message is None:
            include_message = isinstance(exc, AgentleaseError)
        message = str(exc)[:MAX_ERROR_MESSAGE_CHARS] if include_message else ""
        return cls(type=exception_type_name(exc), message=message)


class UsageInfo(BaseModel, frozen=True, extra="forbid"):
    """Token counts of one model call."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_usage(cls, usage: UsageLike) -> UsageInfo:
        """Copy the token counts of a usage object (any object with the three fields)."""
        return construct_trusted(
            cls,
            input_tokens=int(usage.input_tokens),
            output_tokens=int(usage.output_tokens),
            total_tokens=int(usage.total_tokens),
        )


class AuditRecord(BaseModel, frozen=True, extra="forbid"):
    """One event of an audit session.

    `AuditLog.append` fills `chain_id`, `seq`, `time`, `prev_hash` and `hash`. `hash` is the
    SHA-256 of the record's canonical JSON without the `hash` key: keys sorted, separators
    ``","`` and ``":"``, non-ASCII characters unescaped, encoded as UTF-8. `prev_hash` is the
    hash of the record before it in the chain, or `GENESIS_HASH` for the first one.

    Attributes:
        schema_version: The record schema version.
        chain_id: The id of the hash chain, the same for every record of one log.
        seq: The position in the chain, starting at 0.
        time: When the record was appended, RFC 3339 in UTC with microseconds.
        session_id: The audit session, which is the id of the task that produced the event.
        parent_session_id: The session of the parent task, for sub-agents.
        task_name: The task's name.
        trace_id: The OpenTelemetry trace id, 32 hex digits.
        span_id: The OpenTelemetry span id, 16 hex digits.
        actor: The workload identity that acted (a SPIFFE id or an OIDC subject).
        on_behalf_of: The user the task acts for.
        action: What happened, such as ``task.start``, ``task.end``, ``policy.decision``,
            ``grant.mint``, ``grant.revoke``, ``model.call``, ``route.fallback``,
            ``tool.call`` or ``finding``.
        resource: What the action was about, such as ``route:fast`` or ``tool:get_weather``.
        decision: The policy decision, for events that were decided.
        credential: The credential the call used.
        outcome: ``"ok"``, ``"denied"``, ``"error"``, or ``"cancelled"`` for work that was
            interrupted (a cancelled asyncio task, KeyboardInterrupt).
        error: The error, when the outcome is ``"error"``.
        usage: Token counts of a model call.
        args_hash: `stable_hash` of a tool call's arguments.
        result_hash: `stable_hash` of a tool call's result.
        attributes: Further JSON values describing the event.
        prev_hash: The hash of the previous record in the chain.
        hash: The hash of this record.
    """

    schema_version: int = SCHEMA_VERSION
    chain_id: str
    seq: int = Field(ge=0)
    time: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
    session_id: str
    parent_session_id: str | None = None
    task_name: str | None = None
    trace_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    span_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    actor: str
    on_behalf_of: str | None = None
    action: str
    resource: str | None = None
    decision: DecisionInfo | None = None
    credential: CredentialInfo | None = None
    outcome: Outcome = "ok"
    error: ErrorInfo | None = None
    usage: UsageInfo | None = None
    args_hash: str | None = None
    result_hash: str | None = None
    attributes: dict[str, Any] = Field(default_factory=lambda: {})
    prev_hash: str = Field(pattern=_HEX64)
    hash: str = Field(pattern=_HEX64)


def exception_type_name(exc: BaseException) -> str:
    """Return an exception's class name, prefixed with its module unless it is a builtin.

    This is the form OpenTelemetry recommends for `error.type`, such as
    ``agentlease.errors.PolicyDenied`` or ``TimeoutError``.
    """
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"
