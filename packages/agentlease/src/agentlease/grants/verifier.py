"""The grant verifier: the checks every receiver of a grant applies before trusting it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, cast

from agentlease.errors import ConfigurationError, GrantInvalid, GrantRevoked
from agentlease.grants._checks import (
    check_audience,
    check_issuer,
    check_times,
    is_text,
    preview,
    require_string,
    require_time,
)
from agentlease.grants._jwt import PublicKey, load_verification_keys, verify_compact
from agentlease.grants.keys import SigningKey
from agentlease.grants.revocation import RevocationList
from agentlease.routing import DATA_CLASSES

__all__ = ["GRANT_TYP", "GrantClaims", "GrantVerifier"]

GRANT_TYP = "at+jwt"
"""The JOSE ``typ`` of a grant: an OAuth 2.0 access token in the JWT profile of RFC 9068."""


@dataclass(frozen=True, slots=True)
class GrantClaims:
    """The claims of a grant that passed verification.

    Attributes:
        issuer: ``iss``, equal to the verifier's issuer.
        subject: ``sub``, the workload the grant was minted for.
        audience: ``aud``, equal to the audience passed to `GrantVerifier.verify`.
        scope: ``scope``, space-separated scope tokens.
        task_id: ``task_id``, the task the grant belongs to.
        data_class: ``data_class``, the task's data class when the grant was minted, or None
            if the issuer did not send one.
        jti: ``jti``, the unique grant id.
        issued_at: ``iat`` in seconds since the epoch.
        expires_at: ``exp`` in seconds since the epoch.
        not_before: ``nbf`` in seconds since the epoch.
        act: ``act``, the RFC 8693 actor (delegation) claim, if any.
        client_id: ``client_id``, the client the grant was issued to.
        raw: Every claim of the token, read-only.
    """

    issuer: str
    subject: str
    audience: str
    scope: str
    task_id: str
    data_class: str | None
    jti: str
    issued_at: int
    expires_at: int
    not_before: int
    act: Mapping[str, Any] | None
    client_id: str
    raw: Mapping[str, Any]

    @property
    def scopes(self) -> frozenset[str]:
        """The scope tokens of ``scope``."""
        return frozenset(self.scope.split())


class GrantVerifier:
    """Verifies grants for one issuer against a fixed set of trusted keys.

    The rules follow RFC 8725 (JWT best current practice) and RFC 9068, and each stops a known
    attack on JWT verifiers:

    - the token's length is capped before anything is decoded;
    - the algorithm is bound to the key that ``kid`` names (ES256 for a P-256 key) and the
      header's ``alg`` must equal it, so ``none``, HMAC with the public key as secret and
      algorithm substitution all fail;
    - headers that name their own key (``jku``, ``x5u``, ``jwk``, ``x5c``), any ``crit``, and
      unencoded, compressed or encrypted forms are rejected;
    - ``typ`` must be exactly ``at+jwt``, and ``kid`` must be present and trusted;
    - ``iss`` must match exactly; ``aud`` must be one string equal to the expected audience
      (a list is rejected even when its only element matches);
    - ``exp``, ``iat`` and ``nbf`` must be JSON integers, ``0 < exp - iat <= max_lifetime``,
      and ``iat`` and ``nbf`` may not lie in the future beyond the leeway;
    - ``iss``, ``sub``, ``aud``, ``exp``, ``iat``, ``nbf``, ``jti``, ``scope``, ``task_id`` and
      ``client_id`` are required, and duplicate claim names are rejected;
    - the ``jti`` and the task must not be revoked.

    An expired grant raises `GrantExpired`, a revoked one `GrantRevoked`, and every other
    failure `GrantInvalid`. Each carries one of these ``reason`` codes: ``oversized``,
    ``malformed``, ``duplicate_member``, ``alg_none``, ``alg_hmac``, ``alg_not_allowed``,
    ``forbidden_header``, ``unsupported_crit``, ``unsupported_header``, ``wrong_typ``,
    ``missing_kid``, ``unknown_kid``, ``bad_signature``, ``missing_claim``, ``invalid_claim``,
    ``wrong_issuer``, ``multiple_audiences``, ``wrong_audience``, ``invalid_lifetime``,
    ``issued_in_future``, ``not_yet_valid``, ``expired`` or ``revoked``. Messages never
    contain the token.

    The verifier keeps no per-token state, so one instance can serve many threads.

    Example:
        >>> from agentlease.grants import LocalBroker
        >>> broker = LocalBroker()
        >>> grant = broker.mint(subject="spiffe://example.org/agent", audience="tool:search",
        ...                     scope="call", task_id="t-1", data_class="internal", lifetime=60)
        >>> broker.verifier().verify(grant.token, audience="tool:search").task_id
        't-1'
    """

    __slots__ = (
        "_clock",
        "_issuer",
        "_keys",
        "_leeway",
        "_max_lifetime",
        "_max_token_bytes",
        "_revocations",
    )

    def __init__(
        self,
        *,
        issuer: str,
        keys: Mapping[str, Any] | Sequence[Any] | SigningKey | PublicKey,
        revocations: RevocationList | None = None,
        max_lifetime: int = 900,
        leeway: int = 30,
        max_token_bytes: int = 8192,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create a verifier.

        Args:
            issuer: The exact ``iss`` a grant must carry.
            keys: The issuer's public keys: a JWK set such as `LocalBroker.jwks()`, one JWK,
                or a sequence of `SigningKey`s, JWKs and `cryptography` public keys.
            revocations: The revocation list to consult, if any.
            max_lifetime: The largest ``exp - iat`` accepted, in seconds.
            leeway: Seconds of clock skew tolerated when checking ``exp``, ``iat`` and ``nbf``.
            max_token_bytes: The largest token accepted, checked before parsing.
            clock: Returns the current time in seconds since the epoch.

        Raises:
            ConfigurationError: An argument is out of range, or a key cannot be used.
        """
        if not is_text(issuer):
            raise ConfigurationError(
                f"GrantVerifier issuer {issuer!r} is not a non-empty string; "
                "pass the broker's issuer."
            )
        _require_positive("max_lifetime", max_lifetime)
        _require_positive("max_token_bytes", max_token_bytes)
        if type(leeway) is not int or leeway < 0:
            raise ConfigurationError(
                f"GrantVerifier leeway {leeway!r} is not a non-negative integer number of "
                "seconds; pass a small value such as 30."
            )
        self._issuer = issuer
        self._keys = load_verification_keys(keys)
        self._revocations = revocations
        self._max_lifetime = max_lifetime
        self._leeway = leeway
        self._max_token_bytes = max_token_bytes
        self._clock = clock

    @property
    def issuer(self) -> str:
        """The ``iss`` every grant must carry."""
        return self._issuer

    @property
    def key_ids(self) -> frozenset[str]:
        """The ``kid`` of every trusted key."""
        return frozenset(self._keys)

    @property
    def leeway(self) -> int:
        """Seconds of clock skew tolerated."""
        return self._leeway

    def verify(self, token: str, *, audience: str) -> GrantClaims:
        """Verify a grant presented to `audience` and return its claims.

        Raises:
            GrantInvalid: The token fails a rule, named by ``reason``.
            GrantExpired: The grant has expired.
            GrantRevoked: The grant or its task has been revoked.
        """
        if not is_text(audience):
            raise ConfigurationError(
                f"Expected audience {audience!r} is not a non-empty string; "
                "pass the name this receiver is known by."
            )

        _, claims = verify_compact(
            token, self._keys, max_bytes=self._max_token_bytes, typ=GRANT_TYP
        )

        issuer = require_string(claims, "iss")
        subject = require_string(claims, "sub")
        check_audience(claims, audience, allow_list_of_one=False)
        expires_at = require_time(claims, "exp")
        issued_at = require_time(claims, "iat")
        not_before = require_time(claims, "nbf")
        jti = require_string(claims, "jti")
        scope = require_string(claims, "scope")
        task_id = require_string(claims, "task_id")
        client_id = require_string(claims, "client_id")
        data_class = _data_class(claims)
        act = _act(claims)

        check_issuer(issuer, self._issuer)
        check_times(
            expires_at=expires_at,
            issued_at=issued_at,
            not_before=not_before,
            now=self._clock(),
            leeway=self._leeway,
            max_lifetime=self._max_lifetime,
        )

        if self._revocations is not None and self._revocations.is_revoked(jti=jti, task_id=task_id):
            raise GrantRevoked(
                f"Grant {jti!r} of task {task_id!r} has been revoked; "
                "open a new task or request a new grant.",
                reason="revoked",
            )

        return GrantClaims(
            issuer=issuer,
            subject=subject,
            audience=audience,
            scope=scope,
            task_id=task_id,
            data_class=data_class,
            jti=jti,
            issued_at=issued_at,
            expires_at=expires_at,
            not_before=not_before,
            act=act,
            client_id=client_id,
            raw=MappingProxyType(claims),
        )

    def __repr__(self) -> str:
        return f"GrantVerifier(issuer={self._issuer!r}, kids={sorted(self._keys)!r})"


def _require_positive(name: str, value: int) -> None:
    if type(value) is not int or value <= 0:
        raise ConfigurationError(
            f"GrantVerifier {name} {value!r} is not a positive integer; pass a value above 0."
        )


def _data_class(claims: Mapping[str, Any]) -> str | None:
    if "data_class" not in claims:
        return None
    value = claims["data_class"]
    if value not in DATA_CLASSES:
        raise GrantInvalid(
            f"Grant claim 'data_class' is {preview(value)}, not one of "
            f"{', '.join(DATA_CLASSES)}; the issuer must send a known data class.",
            reason="invalid_claim",
        )
    return value


def _act(claims: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if "act" not in claims:
        return None
    value = claims["act"]
    if not isinstance(value, dict):
        raise GrantInvalid(
            f"Grant claim 'act' is {preview(value)}, not a JSON object; "
            "the issuer must send an RFC 8693 actor object.",
            reason="invalid_claim",
        )
    return MappingProxyType(cast("dict[str, Any]", value))
