"""Header and claim rules shared by the grant verifier and the identity token reader.

Every rule raises `GrantInvalid` (or `GrantExpired`) with a stable ``reason`` code. Messages
name the header parameter or claim but never repeat the token. Values read before the
signature is verified are shown through `preview`, which caps their length.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from agentlease.errors import GrantExpired, GrantInvalid

__all__ = [
    "MAX_TIME",
    "check_audience",
    "check_header",
    "check_issuer",
    "check_times",
    "is_text",
    "optional_time",
    "preview",
    "require_string",
    "require_time",
]

# Header parameters that name a key or where to fetch one. A verifier that honoured them
# would let the token choose the key that verifies it, so they are rejected outright.
_KEY_SOURCE_HEADERS = ("jku", "jwk", "x5c", "x5u")
# Header parameters of JWS and JWE extensions that agentlease does not implement: unencoded
# payloads (RFC 7797), compression, and encryption.
_UNSUPPORTED_HEADERS = ("b64", "enc", "zip")

MAX_TIME = 2**53 - 1
"""The largest NumericDate accepted: the largest integer that every JSON parser keeps exact."""


def is_text(value: object) -> bool:
    """Return whether a value is a non-empty string, whatever its declared type."""
    return isinstance(value, str) and bool(value)


def preview(value: object) -> str:
    """Return a repr of an untrusted value, cut to 64 characters for messages."""
    text = repr(value)
    return text if len(text) <= 64 else f"{text[:61]}..."


def check_header(header: Mapping[str, Any], *, typ: str | None, forbidden_typ: str | None) -> str:
    """Check the JOSE header of a compact JWS and return its ``kid``.

    The signature is not verified yet, so this function can only reject. The caller then binds
    the ``kid`` to a trusted key, whose algorithm the header's ``alg`` must equal.

    Args:
        header: The decoded header.
        typ: The exact ``typ`` required, or None to accept any ``typ``.
        forbidden_typ: A ``typ`` that is rejected, so one kind of token cannot stand in for
            another (RFC 8725 section 3.11).

    Raises:
        GrantInvalid: With reason ``alg_none``, ``alg_hmac``, ``alg_not_allowed``,
            ``forbidden_header``, ``unsupported_crit``, ``unsupported_header``, ``wrong_typ``
            or ``missing_kid``.
    """
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise GrantInvalid(
            "Token header has no 'alg'; sign the token with an asymmetric algorithm such as ES256.",
            reason="alg_not_allowed",
        )
    if alg.lower() == "none":
        raise GrantInvalid(
            "Token is unsigned (alg 'none'); agentlease only accepts signed tokens.",
            reason="alg_none",
        )
    if alg.upper().startswith("HS"):
        raise GrantInvalid(
            f"Token uses the HMAC algorithm {preview(alg)}; agentlease only accepts "
            "asymmetric signatures, so sign it with the issuer's private key.",
            reason="alg_hmac",
        )

    for name in _KEY_SOURCE_HEADERS:
        if name in header:
            raise GrantInvalid(
                f"Token header sets {name!r}, which would let the token choose its own key; "
                "remove it and sign with a key from the verifier's key set.",
                reason="forbidden_header",
            )
    if "crit" in header:
        raise GrantInvalid(
            f"Token header marks {preview(header['crit'])} as critical, and agentlease "
            "implements no JWS extension; remove 'crit'.",
            reason="unsupported_crit",
        )
    for name in _UNSUPPORTED_HEADERS:
        if name in header:
            raise GrantInvalid(
                f"Token header sets {name!r}, a JOSE extension agentlease does not implement; "
                "send a plain compact JWS.",
                reason="unsupported_header",
            )

    actual_typ = header.get("typ")
    if typ is not None and actual_typ != typ:
        raise GrantInvalid(
            f"Token header has typ {preview(actual_typ)}, expected {typ!r}; "
            "present a token of the expected type.",
            reason="wrong_typ",
        )
    if forbidden_typ is not None and actual_typ == forbidden_typ:
        raise GrantInvalid(
            f"Token header has typ {forbidden_typ!r}, which is not accepted here; "
            "present a token of the expected type.",
            reason="wrong_typ",
        )

    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise GrantInvalid(
            "Token header has no 'kid'; sign the token with a key whose kid is in the "
            "verifier's key set.",
            reason="missing_kid",
        )
    return kid


def require_string(claims: Mapping[str, Any], name: str) -> str:
    """Return a claim that must be a non-empty string.

    Raises:
        GrantInvalid: With reason ``missing_claim`` or ``invalid_claim``.
    """
    if name not in claims:
        raise GrantInvalid(
            f"Token has no {name!r} claim; the issuer must include it.", reason="missing_claim"
        )
    value = claims[name]
    if not isinstance(value, str) or not value:
        raise GrantInvalid(
            f"Token claim {name!r} is {preview(value)}, not a non-empty string; "
            "the issuer must send a string.",
            reason="invalid_claim",
        )
    return value


def require_time(claims: Mapping[str, Any], name: str) -> int:
    """Return a NumericDate claim that must be present.

    Raises:
        GrantInvalid: With reason ``missing_claim`` or ``invalid_claim``.
    """
    if name not in claims:
        raise GrantInvalid(
            f"Token has no {name!r} claim; the issuer must include it.", reason="missing_claim"
        )
    return _time_value(claims, name)


def optional_time(claims: Mapping[str, Any], name: str) -> int | None:
    """Return a NumericDate claim, or None when it is absent.

    Raises:
        GrantInvalid: With reason ``invalid_claim``.
    """
    if name not in claims:
        return None
    return _time_value(claims, name)


def _time_value(claims: Mapping[str, Any], name: str) -> int:
    # Only JSON integers count: `type(...) is int` also excludes bool, and floats and numeric
    # strings are rejected because other verifiers parse them differently.
    value = claims[name]
    if type(value) is not int or not 0 < value <= MAX_TIME:
        raise GrantInvalid(
            f"Token claim {name!r} is {preview(value)}, not a positive integer number of "
            "seconds since the epoch; the issuer must send an integer.",
            reason="invalid_claim",
        )
    return value


def check_issuer(issuer: str, expected: str) -> None:
    """Require an exact issuer match.

    Raises:
        GrantInvalid: With reason ``wrong_issuer``.
    """
    if issuer != expected:
        raise GrantInvalid(
            f"Token issuer {preview(issuer)} does not match the expected issuer "
            f"{expected!r}; present a token from that issuer.",
            reason="wrong_issuer",
        )


def check_audience(claims: Mapping[str, Any], expected: str, *, allow_list_of_one: bool) -> str:
    """Require the ``aud`` claim to name exactly the expected audience, and return it.

    Args:
        claims: The token claims.
        expected: The audience of the caller.
        allow_list_of_one: Whether a JSON array with one element is accepted as well as a
            string. An array of several audiences is always rejected, because such a token is
            valid at every one of them.

    Raises:
        GrantInvalid: With reason ``missing_claim``, ``multiple_audiences``,
            ``invalid_claim`` or ``wrong_audience``.
    """
    if "aud" not in claims:
        raise GrantInvalid(
            "Token has no 'aud' claim; request a token for one audience.", reason="missing_claim"
        )
    value = claims["aud"]
    if isinstance(value, list):
        audiences = cast("list[Any]", value)
        if not allow_list_of_one or len(audiences) != 1:
            raise GrantInvalid(
                f"Token has {len(audiences)} audiences in a list; request a token whose 'aud' "
                "is the single string "
                f"{expected!r}.",
                reason="multiple_audiences",
            )
        value = audiences[0]
    if not isinstance(value, str) or not value:
        raise GrantInvalid(
            f"Token claim 'aud' is {preview(value)}, not a non-empty string; "
            "the issuer must send a string.",
            reason="invalid_claim",
        )
    if value != expected:
        raise GrantInvalid(
            f"Token is for audience {preview(value)}, not {expected!r}; "
            f"request a token for {expected!r}.",
            reason="wrong_audience",
        )
    return value


def check_times(
    *,
    expires_at: int,
    issued_at: int | None,
    not_before: int | None,
    now: float,
    leeway: int,
    max_lifetime: int | None,
) -> None:
    """Check ``exp``, ``iat`` and ``nbf`` against the clock and the maximum lifetime.

    Args:
        expires_at: The ``exp`` claim.
        issued_at: The ``iat`` claim, if present.
        not_before: The ``nbf`` claim, if present.
        now: The current time in seconds since the epoch.
        leeway: Seconds of clock skew tolerated in each direction.
        max_lifetime: The largest ``exp - iat`` accepted, or None for no limit.

    Raises:
        GrantInvalid: With reason ``invalid_lifetime``, ``issued_in_future`` or
            ``not_yet_valid``.
        GrantExpired: With reason ``expired``.
    """
    if issued_at is not None and max_lifetime is not None:
        lifetime = expires_at - issued_at
        if not 0 < lifetime <= max_lifetime:
            raise GrantInvalid(
                f"Token lifetime exp - iat is {lifetime} seconds, outside 1 to {max_lifetime}; "
                "request a token with a shorter lifetime.",
                reason="invalid_lifetime",
            )
    if issued_at is not None and issued_at > now + leeway:
        raise GrantInvalid(
            f"Token was issued {issued_at - now:.0f} seconds in the future; "
            "check the clocks of the issuer and this host.",
            reason="issued_in_future",
        )
    if not_before is not None and not_before > now + leeway:
        raise GrantInvalid(
            f"Token is not valid for another {not_before - now:.0f} seconds (nbf); "
            "check the clocks of the issuer and this host.",
            reason="not_yet_valid",
        )
    if now >= expires_at + leeway:
        raise GrantExpired(
            f"Token expired {now - expires_at:.0f} seconds ago; request a new one.",
            reason="expired",
        )
