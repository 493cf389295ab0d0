"""Grants, the broker protocol, and the local broker that signs grants in process."""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agentlease.errors import ConfigurationError, GrantRevoked
from agentlease.grants._checks import is_text
from agentlease.grants._jwt import GrantSigner
from agentlease.grants.keys import SigningKey
from agentlease.grants.revocation import InMemoryRevocationList, RevocationList
from agentlease.grants.verifier import GRANT_TYP, GrantVerifier
from agentlease.routing import DATA_CLASSES

__all__ = ["Broker", "Grant", "LocalBroker"]

logger = logging.getLogger(__name__)

_JTI_BYTES = 16  # 128 random bits


@dataclass(frozen=True, slots=True)
class Grant:
    """A short-lived credential for one audience within one task.

    The token is a signed JWT; it never appears in `repr` or `str`, and `metadata` leaves it
    out, so a grant can be logged and audited safely.

    Attributes:
        token: The compact JWS to send as a bearer token.
        jti: The unique grant id.
        audience: The one resource the grant is for.
        scope: Space-separated scope tokens.
        task_id: The task the grant belongs to.
        subject: The workload the grant was minted for.
        issuer: The broker's issuer.
        key_id: The ``kid`` of the signing key.
        issued_at: ``iat`` in seconds since the epoch.
        expires_at: ``exp`` in seconds since the epoch.
        data_class: The task's data class when the grant was minted.
    """

    token: str = field(repr=False)
    jti: str
    audience: str
    scope: str
    task_id: str
    subject: str
    issuer: str
    key_id: str
    issued_at: int
    expires_at: int
    data_class: str

    def metadata(self) -> dict[str, Any]:
        """Return the grant's identifying claims for audit records and spans, never the token."""
        return {
            "jti": self.jti,
            "kid": self.key_id,
            "aud": self.audience,
            "scope": self.scope,
            "iss": self.issuer,
            "sub": self.subject,
            "iat": self.issued_at,
            "exp": self.expires_at,
        }

    def expires_within(self, seconds: float, now: float) -> bool:
        """Return whether the grant expires less than `seconds` after `now`, or already has."""
        return self.expires_at - now <= seconds


class Broker(Protocol):
    """Mints and revokes grants, and publishes the keys that verify them."""

    @property
    def issuer(self) -> str:
        """The ``iss`` of every grant the broker mints."""
        ...

    def mint(
        self,
        *,
        subject: str,
        audience: str,
        scope: str,
        task_id: str,
        data_class: str,
        lifetime: int,
        act: Mapping[str, Any] | None = None,
        client_id: str | None = None,
    ) -> Grant:
        """Mint a grant for one audience within one task."""
        ...

    def revoke(self, grant: Grant) -> None:
        """Revoke one grant."""
        ...

    def revoke_task(self, task_id: str, *, until: int) -> None:
        """Revoke every grant of a task, keeping the entry until at least `until`."""
        ...

    def jwks(self) -> dict[str, Any]:
        """Return the JWK set that verifies the broker's grants."""
        ...

    def verifier(self) -> GrantVerifier:
        """Return a verifier for the broker's grants that consults its revocations."""
        ...


class LocalBroker:
    """A broker that signs ES256 grants in process with one key.

    Without `key` or `key_file` the key is generated and lives only as long as the process.
    With `key_file`, the key is loaded from that file, or generated and written there (mode
    0600) when the file is missing, so several processes that share the file share one
    issuer and one ``kid``.

    Example:
        >>> broker = LocalBroker()
        >>> grant = broker.mint(subject="spiffe://example.org/agent", audience="route:fast",
        ...                     scope="invoke", task_id="t-1", data_class="internal",
        ...                     lifetime=300)
        >>> grant.audience, grant.expires_at - grant.issued_at
        ('route:fast', 300)
    """

    __slots__ = (
        "_clock",
        "_issuer",
        "_key",
        "_leeway",
        "_max_lifetime",
        "_revocations",
        "_signer",
        "_verifier",
        "_verifier_lock",
    )

    def __init__(
        self,
        *,
        issuer: str = "urn:agentlease:local",
        key: SigningKey | None = None,
        key_file: str | os.PathLike[str] | None = None,
        revocations: RevocationList | None = None,
        max_lifetime: int = 900,
        leeway: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create a broker.

        Args:
            issuer: The ``iss`` of every grant.
            key: The signing key.
            key_file: A PEM file to load the key from, or to create when missing.
            revocations: Where revocations are recorded; a new in-memory list by default.
            max_lifetime: The maximum grant lifetime in seconds. Longer requests are capped.
            leeway: Seconds of clock skew that verifiers of these grants tolerate. Revocation
                entries are kept this much longer than the grants they cover, and `verifier`
                uses it.
            clock: Returns the current time in seconds since the epoch.

        Raises:
            ConfigurationError: Both `key` and `key_file` are given, an argument is out of
                range, or the key file cannot be loaded.
        """
        if not is_text(issuer):
            raise ConfigurationError(
                f"LocalBroker issuer {issuer!r} is not a non-empty string; pass a URI such as "
                "'urn:agentlease:local'."
            )
        if type(max_lifetime) is not int or max_lifetime <= 0:
            raise ConfigurationError(
                f"LocalBroker max_lifetime {max_lifetime!r} is not a positive integer; "
                "pass a number of seconds such as 900."
            )
        if type(leeway) is not int or leeway < 0:
            raise ConfigurationError(
                f"LocalBroker leeway {leeway!r} is not a non-negative integer; "
                "pass a small number of seconds such as 30."
            )
        if key is not None and key_file is not None:
            raise ConfigurationError("Pass LocalBroker either key or key_file, not both.")

        if key is None:
            key = SigningKey.generate() if key_file is None else _load_or_create(Path(key_file))
        self._issuer = issuer
        self._key = key
        self._signer = GrantSigner(key, typ=GRANT_TYP)
        self._revocations: RevocationList = (
            revocations if revocations is not None else InMemoryRevocationList(clock=clock)
        )
        self._max_lifetime = max_lifetime
        self._leeway = leeway
        self._clock = clock
        self._verifier: GrantVerifier | None = None
        self._verifier_lock = threading.Lock()

    @property
    def issuer(self) -> str:
        """The ``iss`` of every grant."""
        return self._issuer

    @property
    def signing_key(self) -> SigningKey:
        """The key that signs grants."""
        return self._key

    @property
    def revocations(self) -> RevocationList:
        """The revocation list this broker writes to."""
        return self._revocations

    @property
    def max_lifetime(self) -> int:
        """The maximum grant lifetime in seconds."""
        return self._max_lifetime

    def mint(
        self,
        *,
        subject: str,
        audience: str,
        scope: str,
        task_id: str,
        data_class: str,
        lifetime: int,
        act: Mapping[str, Any] | None = None,
        client_id: str | None = None,
    ) -> Grant:
        """Sign a grant for one audience within one task.

        Args:
            subject: The workload id, such as a SPIFFE ID.
            audience: The one resource the grant is for.
            scope: Space-separated scope tokens.
            task_id: The task the grant belongs to.
            data_class: The task's data class, one of `agentlease.routing.DATA_CLASSES`.
            lifetime: Seconds until expiry; capped at `max_lifetime`.
            act: The RFC 8693 actor claim, when acting for someone else.
            client_id: The ``client_id`` claim; the subject by default.

        Raises:
            ConfigurationError: An argument is empty or of the wrong type, the data class is
                unknown, or `lifetime` is not a positive integer.
            GrantRevoked: The task has been revoked, so a new grant would be rejected anyway.
        """
        for name, value in (
            ("subject", subject),
            ("audience", audience),
            ("scope", scope),
            ("task_id", task_id),
        ):
            if not is_text(value):
                raise ConfigurationError(
                    f"Grant {name} {value!r} is not a non-empty string; pass a value."
                )
        if data_class not in DATA_CLASSES:
            raise ConfigurationError(
                f"Unknown data class {data_class!r}; use one of: {', '.join(DATA_CLASSES)}."
            )
        if type(lifetime) is not int or lifetime <= 0:
            raise ConfigurationError(
                f"Grant lifetime {lifetime!r} is not a positive integer number of seconds; "
                f"pass a value from 1 to {self._max_lifetime}."
            )
        if client_id is not None and not is_text(client_id):
            raise ConfigurationError(
                f"Grant client_id {client_id!r} is not a non-empty string; pass a value or None."
            )

        jti = secrets.token_urlsafe(_JTI_BYTES)
        if self._revocations.is_revoked(jti=jti, task_id=task_id):
            raise GrantRevoked(
                f"Task {task_id!r} has been revoked, so no grant can be minted for it; "
                "open a new task.",
                reason="revoked",
            )

        now = int(self._clock())
        expires_at = now + min(lifetime, self._max_lifetime)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": subject,
            "aud": audience,
            "exp": expires_at,
            "iat": now,
            "nbf": now,
            "jti": jti,
            "scope": scope,
            "client_id": client_id or subject,
            "task_id": task_id,
            "data_class": data_class,
        }
        if act is not None:
            claims["act"] = dict(act)

        return Grant(
            token=self._signer.sign(claims),
            jti=jti,
            audience=audience,
            scope=scope,
            task_id=task_id,
            subject=subject,
            issuer=self._issuer,
            key_id=self._key.key_id,
            issued_at=now,
            expires_at=expires_at,
            data_class=data_class,
        )

    def revoke(self, grant: Grant) -> None:
        """Revoke one grant until its expiry plus the leeway verifiers allow."""
        self._revocations.revoke_jti(grant.jti, until=grant.expires_at + self._leeway)

    def revoke_task(self, task_id: str, *, until: int) -> None:
        """Revoke every grant of a task.

        The entry is kept until the later of `until` and the expiry of the longest grant this
        broker could have minted by now, plus the leeway, so no grant of the task outlives it.
        """
        latest_expiry = int(self._clock()) + self._max_lifetime
        self._revocations.revoke_task(task_id, until=max(until, latest_expiry) + self._leeway)

    def jwks(self) -> dict[str, Any]:
        """Return the JWK set with the broker's public key."""
        return {"keys": [self._key.public_jwk()]}

    def verifier(self) -> GrantVerifier:
        """Return a verifier for this broker's grants; it consults the broker's revocations."""
        verifier = self._verifier
        if verifier is None:
            with self._verifier_lock:
                verifier = self._verifier
                if verifier is None:
                    verifier = GrantVerifier(
                        issuer=self._issuer,
                        keys=[self._key],
                        revocations=self._revocations,
                        max_lifetime=self._max_lifetime,
                        leeway=self._leeway,
                        clock=self._clock,
                    )
                    self._verifier = verifier
        return verifier

    def __repr__(self) -> str:
        return f"LocalBroker(issuer={self._issuer!r}, kid={self._key.key_id!r})"


def _load_or_create(path: Path) -> SigningKey:
    if path.exists():
        return SigningKey.load(path)
    key = SigningKey.generate()
    try:
        key.save(path, exist_ok=False)
    except FileExistsError:
        # Another process created the file first; use its key so both share one issuer key.
        return SigningKey.load(path)
    except OSError as error:
        raise ConfigurationError(
            f"Cannot create signing key file {str(path)!r} ({error.strerror}); "
            "check that its directory is writable."
        ) from None
    logger.info("Created signing key file %s (kid %s)", path, key.key_id)
    return key
