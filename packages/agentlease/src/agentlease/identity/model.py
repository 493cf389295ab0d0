"""The workload identity value object and the protocol of its sources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["IdentitySource", "WorkloadIdentity"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadIdentity:
    """Who an agent is, and whether that was verified.

    Attributes:
        id: The SPIFFE ID, or ``"<issuer>#<subject>"`` for an OIDC identity.
        subject: The ``sub`` claim, or the SPIFFE ID.
        issuer: The OIDC issuer, if any.
        verified: Whether the identity was checked against its issuer's keys. A development
            identity is never verified, so policy can refuse it in production.
        source: The kind of source that produced it, such as ``"development"``.
        claims: The identity token's claims, when it came from a token.
        credential: The identity token itself; it is never shown in `repr`.
    """

    id: str
    subject: str
    issuer: str | None = None
    verified: bool = False
    source: str = "development"
    claims: Mapping[str, Any] = field(default_factory=lambda: {}, repr=False)
    credential: str | None = field(default=None, repr=False)

    @property
    def trust_domain(self) -> str:
        """The SPIFFE trust domain, or the issuer for an OIDC identity."""
        if self.id.startswith("spiffe://"):
            return self.id[len("spiffe://") :].split("/", 1)[0]
        return self.issuer or ""

    def policy_properties(self) -> dict[str, Any]:
        """Return the attributes the policy sees for this identity."""
        return {
            "verified": self.verified,
            "issuer": self.issuer or "",
            "trust_domain": self.trust_domain,
        }


@runtime_checkable
class IdentitySource(Protocol):
    """Anything that can tell the current workload identity.

    Sources are asked once per task, so a source backed by a rotating file sees each new
    token as it arrives.
    """

    def get(self) -> WorkloadIdentity:
        """Return the current identity.

        Raises:
            IdentityError: The identity cannot be loaded or verified.
        """
        ...
