"""The runtime: one identity source, broker, policy engine, route catalog and audit log.

Most programs use the default runtime, built on first use from `agentlease.toml` or the
embedded defaults. Tests and programs that need several configurations build a `Runtime`
themselves and pass it to `agentlease.task(..., runtime=...)` or set it with `configure`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentlease.audit import AuditLog
from agentlease.config import Settings, load_settings
from agentlease.errors import ConfigurationError, GrantError, PolicyLoadError
from agentlease.grants import Broker, GrantClaims, LocalBroker
from agentlease.grants._jwt import unverified_claims
from agentlease.identity import DevelopmentIdentity, IdentitySource, OIDCTokenFile
from agentlease.policy import (
    AccessRequest,
    CachingPolicyEngine,
    CedarEngine,
    Decision,
    PolicyEngine,
    Resource,
)
from agentlease.providers import ChatProvider, OpenAIProvider
from agentlease.routing import Route, RouteCatalog
from agentlease.telemetry import Telemetry

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["Runtime", "configure", "get_runtime", "reset_runtime"]

logger = logging.getLogger(__name__)


class Runtime:
    """Everything a task needs: who it is, who mints its grants, what decides, where it goes.

    Args:
        routes: The routes model calls may take.
        policy: The policy engine; defaults to the starter Cedar policies.
        identity: The workload identity source; defaults to a development identity.
        broker: The grant broker; defaults to an in-process `LocalBroker`.
        audit: The audit log; defaults to a JSONL file at ``.agentlease/audit.jsonl``.
        providers: Chat providers by protocol name; ``openai`` is built on demand.
        grant_lifetime: Seconds a grant lives.
        decision_cache_ttl: Seconds a policy decision is reused; 0 turns the cache off.
        tracer_provider: The OpenTelemetry tracer provider; defaults to the global one.
    """

    def __init__(
        self,
        *,
        routes: Iterable[Route] = (),
        policy: PolicyEngine | None = None,
        identity: IdentitySource | None = None,
        broker: Broker | None = None,
        audit: AuditLog | None = None,
        providers: dict[str, ChatProvider] | None = None,
        grant_lifetime: int = 300,
        decision_cache_ttl: float = 60.0,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        if grant_lifetime <= 0:
            raise ConfigurationError(
                f"grant_lifetime is {grant_lifetime}; use a positive number of seconds."
            )
        self.routes = RouteCatalog(routes)
        engine = policy if policy is not None else CedarEngine()
        self.policy: PolicyEngine = (
            CachingPolicyEngine(engine, ttl=decision_cache_ttl)
            if decision_cache_ttl > 0
            else engine
        )
        self.identity: IdentitySource = identity if identity is not None else DevelopmentIdentity()
        self.broker: Broker = broker if broker is not None else LocalBroker()
        self.audit: AuditLog = (
            audit if audit is not None else AuditLog.to_file(Path(".agentlease/audit.jsonl"))
        )
        self.telemetry = Telemetry(tracer_provider)
        self.grant_lifetime = grant_lifetime
        self.grant_refresh_margin = min(30.0, grant_lifetime / 4)
        self._providers: dict[str, ChatProvider] = dict(providers or {})
        self._providers_lock = threading.Lock()
        self._route_resources: dict[str, Resource] = {}

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Runtime:
        """Build a runtime from loaded settings; keyword arguments replace single parts."""
        parts: dict[str, Any] = {
            "routes": settings.build_routes(),
            "policy": _policy_from_settings(settings),
            "identity": _identity_from_settings(settings),
            "broker": LocalBroker(
                issuer=settings.broker.issuer,
                key_file=(
                    settings.resolve_path(settings.broker.key_file)
                    if settings.broker.key_file
                    else None
                ),
                max_lifetime=settings.broker.max_lifetime,
            ),
            "audit": AuditLog.to_file(
                settings.resolve_path(settings.audit.path), fsync=settings.audit.fsync
            ),
            "grant_lifetime": min(settings.broker.grant_lifetime, settings.broker.max_lifetime),
            "decision_cache_ttl": settings.policy.decision_cache_ttl,
        }
        parts.update(overrides)
        return cls(**parts)

    @classmethod
    def from_config(cls, path: str | Path | None = None, **overrides: Any) -> Runtime:
        """Build a runtime from `agentlease.toml` (or the embedded defaults).

        A configuration that fails to load is recorded in the audit log before the error is
        raised: in the log the file names, or in the default log when the file cannot be read.

        Raises:
            ConfigurationError: The file or a policy it names is invalid.
        """
        settings: Settings | None = None
        try:
            settings = load_settings(path)
            return cls.from_settings(settings, **overrides)
        except ConfigurationError as exc:
            _audit_startup_failure(settings, path, exc)
            raise

    def verify_grant(self, token: str, *, audience: str) -> GrantClaims:
        """Verify a grant received by a service this runtime protects, auditing a rejection.

        Tool servers and gateways that share the broker's key use this to check the bearer
        token of an incoming call. A rejected token is recorded as a ``grant.verify`` record in
        the session of the task it claims to belong to; the token itself is never recorded.

        Raises:
            GrantInvalid: The token is malformed, forged, or for another audience or issuer.
            GrantExpired: The token has expired.
            GrantRevoked: The token or its task has been revoked.
        """
        try:
            return self.broker.verifier().verify(token, audience=audience)
        except GrantError as exc:
            claimed = _claimed_fields(token)
            self.audit.append(
                session_id=claimed.get("task_id") or "unknown",
                action="grant.verify",
                actor=claimed.get("sub") or "unknown",
                outcome="denied",
                resource=audience,
                error=exc,
                attributes={"reason": exc.reason, "claimed_jti": claimed.get("jti")},
            )
            raise

    def decide(self, requests: Sequence[AccessRequest]) -> list[Decision]:
        """Evaluate requests in one batch; any engine failure denies every request."""
        try:
            decisions = self.policy.evaluate(requests)
        except Exception as exc:
            logger.warning("policy engine failed, denying %d requests: %s", len(requests), exc)
            reason = f"the policy engine failed ({type(exc).__name__}); denied"
            return [Decision(allowed=False, reason=reason, errors=(str(exc),)) for _ in requests]
        if len(decisions) != len(requests):
            reason = "the policy engine returned a wrong number of decisions; denied"
            return [Decision(allowed=False, reason=reason) for _ in requests]
        return decisions

    def route_resource(self, route: Route) -> Resource:
        """Return the policy resource for a route, built once per route."""
        resource = self._route_resources.get(route.name)
        if resource is None:
            resource = Resource(type="Route", id=route.name, properties=route.policy_properties())
            self._route_resources[route.name] = resource
        return resource

    def provider_for(self, route: Route) -> ChatProvider:
        """Return the chat provider for a route's protocol, building it on first use."""
        provider = self._providers.get(route.protocol)
        if provider is not None:
            return provider
        with self._providers_lock:
            provider = self._providers.get(route.protocol)
            if provider is None:
                if route.protocol != "openai":
                    raise ConfigurationError(
                        f"Route {route.name!r} uses protocol {route.protocol!r}, which this "
                        "version cannot call yet; use an OpenAI-compatible endpoint."
                    )
                provider = OpenAIProvider()
                self._providers[route.protocol] = provider
        return provider

    def close(self) -> None:
        """Close the providers' connections and the audit log."""
        for provider in self._providers.values():
            provider.close()
        self.audit.close()

    def __repr__(self) -> str:
        return f"Runtime(routes={[r.name for r in self.routes]}, audit={self.audit.path})"


def _claimed_fields(token: str) -> dict[str, str]:
    """Read the task id, subject and jti a token claims, without trusting them."""
    try:
        claims = unverified_claims(token, max_bytes=8192)
    except GrantError:
        return {}
    return {k: v for k in ("task_id", "sub", "jti") if isinstance(v := claims.get(k), str)}


def _audit_startup_failure(
    settings: Settings | None, path: str | Path | None, exc: ConfigurationError
) -> None:
    """Record a configuration that failed to load; never raises, because the caller will."""
    audit_path = (
        settings.resolve_path(settings.audit.path)
        if settings is not None
        else Path(".agentlease/audit.jsonl")
    )
    try:
        with AuditLog.to_file(audit_path) as log:
            log.append(
                session_id="startup",
                action="config.error",
                actor="agentlease",
                outcome="error",
                resource=str(path) if path is not None else None,
                error=exc,
            )
    except Exception:
        logger.warning("could not record the configuration error in %s", audit_path, exc_info=True)


def _policy_from_settings(settings: Settings) -> PolicyEngine:
    if settings.policy.path is None:
        return CedarEngine()
    path = settings.resolve_path(settings.policy.path)
    if path.is_dir():
        files = sorted(path.glob("*.cedar"))
        if not files:
            raise PolicyLoadError(
                f"The policy folder {str(path)!r} has no .cedar files; add policies or "
                "remove [policy] path to use the starter policies.",
                source=str(path),
            )
        text = "\n".join(f.read_text(encoding="utf-8") for f in files)
        return CedarEngine(text, source=str(path))
    if not path.is_file():
        raise PolicyLoadError(
            f"The policy file {str(path)!r} does not exist; fix [policy] path in "
            f"{settings.source or 'agentlease.toml'!r}.",
            source=str(path),
        )
    return CedarEngine.from_file(path)


def _identity_from_settings(settings: Settings) -> IdentitySource:
    identity = settings.identity
    if identity.source == "development":
        return DevelopmentIdentity(identity.spiffe_id)
    if identity.path is None:
        raise ConfigurationError(
            "[identity] source 'oidc-file' needs 'path', the token file to read."
        )
    jwks = None
    if identity.jwks_file is not None:
        jwks_path = settings.resolve_path(identity.jwks_file)
        try:
            jwks = json.loads(jwks_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"Cannot load the JWKS file {str(jwks_path)!r} ({exc}); "
                "point [identity] jwks_file at the issuer's key set in JSON."
            ) from None
    return OIDCTokenFile(
        settings.resolve_path(identity.path),
        jwks=jwks,
        issuer=identity.issuer,
        audience=identity.audience,
    )


_default: Runtime | None = None
_default_lock = threading.Lock()


def get_runtime() -> Runtime:
    """Return the default runtime, building it from `agentlease.toml` on first use."""
    global _default
    runtime = _default
    if runtime is not None:
        return runtime
    with _default_lock:
        if _default is None:
            _default = Runtime.from_config()
        return _default


def configure(runtime: Runtime | None = None, /, **options: Any) -> Runtime:
    """Set the default runtime.

    Pass a `Runtime`, or keyword arguments for a new one built from `agentlease.toml` with
    those parts replaced, such as ``configure(routes=[...])``.
    """
    global _default
    if runtime is None:
        runtime = Runtime.from_config(**options)
    elif options:
        raise ConfigurationError(
            "Pass either a Runtime or keyword options to configure(), not both."
        )
    with _default_lock:
        _default = runtime
    return runtime


def reset_runtime() -> None:
    """Forget the default runtime, so the next use builds it again."""
    global _default
    with _default_lock:
        _default = None
