"""Exceptions raised by agentlease.

Every exception derives from `AgentleaseError`. Developer mistakes (a typo in a
configuration file, an invalid policy) are `ConfigurationError`s and fail at load time.
Everything else happens at run time and carries structured attributes that name the value
involved, so callers and the audit log can act on them without parsing messages.

```
AgentleaseError
├── ConfigurationError                 a mistake in configuration or code; fix and restart
│   ├── PolicyLoadError                a policy or schema that does not parse or validate
│   └── UnknownRouteError              a model or route name that no route serves
├── TaskError                          a task used outside its lifetime
├── IdentityError                      a workload identity that cannot be loaded or verified
├── PolicyError
│   ├── PolicyDenied                   the policy denied the request
│   └── PolicyEngineError              the engine failed; the request was denied
├── RoutingError
│   └── NoPermittedRouteError          no candidate route is permitted for this task
├── GrantError                         a grant could not be minted or failed verification
│   ├── GrantInvalid                   malformed, forged, or for another audience or issuer
│   ├── GrantExpired
│   └── GrantRevoked
├── ProviderError                      a provider call failed; see `retriable`
│   ├── ProviderUnavailable            connection error or timeout
│   ├── ProviderRateLimited            HTTP 429
│   ├── ProviderAuthError              HTTP 401 or 403
│   ├── ProviderResponseError          any other error status or an unreadable response
│   └── StreamInterrupted              a stream failed after output had begun
└── AuditError
    └── AuditChainBroken               a record was edited, deleted or reordered
```
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AgentleaseError",
    "AuditChainBroken",
    "AuditError",
    "ConfigurationError",
    "GrantError",
    "GrantExpired",
    "GrantInvalid",
    "GrantRevoked",
    "IdentityError",
    "NoPermittedRouteError",
    "PolicyDenied",
    "PolicyEngineError",
    "PolicyError",
    "PolicyLoadError",
    "ProviderAuthError",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderResponseError",
    "ProviderUnavailable",
    "RoutingError",
    "StreamInterrupted",
    "TaskError",
    "UnknownRouteError",
]


class AgentleaseError(Exception):
    """Root of every exception that agentlease raises."""


class ConfigurationError(AgentleaseError, ValueError):
    """A mistake in configuration or in how agentlease is called."""


class PolicyLoadError(ConfigurationError):
    """A policy set or schema that does not parse or does not validate.

    Attributes:
        source: Where the policies came from (a path or ``"<string>"``).
        details: The engine's own error lines.
    """

    def __init__(self, message: str, *, source: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.source = source
        self.details = tuple(details)


class UnknownRouteError(ConfigurationError, LookupError):
    """A model or route name that no configured route serves.

    Attributes:
        name: The name that was requested.
        known: The route names and models that are configured.
    """

    def __init__(self, message: str, *, name: str, known: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.name = name
        self.known = tuple(known)


class TaskError(AgentleaseError, RuntimeError):
    """A task used outside its lifetime, such as a grant requested after the task ended."""


class IdentityError(AgentleaseError):
    """A workload identity that cannot be loaded or verified."""


class PolicyError(AgentleaseError):
    """Base class of policy failures."""


class PolicyDenied(PolicyError, PermissionError):
    """The policy denied a request.

    Attributes:
        action: The action that was requested (``invoke_model``, ``call_tool``).
        resource: The route or tool name.
        policy_ids: The ids of the policies that decided.
        reason: The reason the policy gave.
    """

    def __init__(
        self,
        message: str,
        *,
        action: str,
        resource: str,
        policy_ids: Sequence[str] = (),
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.action = action
        self.resource = resource
        self.policy_ids = tuple(policy_ids)
        self.reason = reason


class PolicyEngineError(PolicyError):
    """The policy engine failed to decide; agentlease treats this as a denial."""


class RoutingError(AgentleaseError):
    """Base class of routing failures."""


class NoPermittedRouteError(RoutingError, PolicyDenied):
    """No candidate route for a model request is permitted for the current task.

    Attributes:
        model: The model or route group that was requested.
        candidates: The route names that were considered, in preference order.
        reasons: The denial reason of each candidate, by route name.
    """

    def __init__(
        self,
        message: str,
        *,
        model: str,
        candidates: Sequence[str],
        reasons: dict[str, str],
        policy_ids: Sequence[str] = (),
    ) -> None:
        super().__init__(
            message,
            action="invoke_model",
            resource=model,
            policy_ids=policy_ids,
            reason="; ".join(f"{name}: {why}" for name, why in reasons.items()),
        )
        self.model = model
        self.candidates = tuple(candidates)
        self.reasons = dict(reasons)


class GrantError(AgentleaseError):
    """A grant could not be minted, or a token failed verification.

    Attributes:
        reason: A short machine-readable code, such as ``"bad_signature"`` or ``"wrong_audience"``.
    """

    def __init__(self, message: str, *, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class GrantInvalid(GrantError):
    """A token that is malformed, forged, or meant for another issuer or audience."""


class GrantExpired(GrantError):
    """A token whose ``exp`` has passed."""


class GrantRevoked(GrantError):
    """A token whose ``jti`` or task has been revoked."""


class ProviderError(AgentleaseError):
    """A model provider call failed.

    Attributes:
        route: The name of the route that was called.
        status_code: The HTTP status, when the provider returned one.
        retriable: Whether another route may succeed where this one failed.
    """

    retriable: bool = False

    def __init__(
        self,
        message: str,
        *,
        route: str,
        status_code: int | None = None,
        retriable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.route = route
        self.status_code = status_code
        if retriable is not None:
            self.retriable = retriable


class ProviderUnavailable(ProviderError):
    """The provider could not be reached, or it timed out."""

    retriable = True


class ProviderRateLimited(ProviderError):
    """The provider returned HTTP 429."""

    retriable = True


class ProviderAuthError(ProviderError):
    """The provider rejected the credential (HTTP 401 or 403)."""


class ProviderResponseError(ProviderError):
    """The provider returned an error status or a response agentlease cannot read.

    A 5xx status is retriable; a 4xx status is not.
    """


class StreamInterrupted(ProviderError):
    """A streamed response failed after output had begun.

    agentlease never retries such a stream on another route, because the caller has already
    received part of the response.
    """


class AuditError(AgentleaseError):
    """Base class of audit failures."""


class AuditChainBroken(AuditError):
    """An audit log whose hash chain does not verify.

    Attributes:
        path: The log file.
        line: The 1-based line number of the first bad record.
    """

    def __init__(self, message: str, *, path: str, line: int) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
