"""Compact JWS encoding and decoding: the only module of agentlease that imports PyJWT.

agentlease splits the JOSE work in two. This module parses the compact serialization itself
(strict base64url, JSON objects without duplicate member names, a size cap checked first) and
uses PyJWT's algorithm objects for the signature and PyJWT's JWK parser for key sets. PyJWT
2.15's own `PyJWS.decode_complete` checks base64 one character at a time in Python. Timed with
`timeit` on one development machine, that added about half the cost of the ES256 verification
itself for a 550-byte grant, so the hot path avoids it.

Every PyJWT exception that can reach a caller is translated by `translate_error` into a
`GrantError` with a ``reason`` code. Translated messages never contain PyJWT's own text,
because some of it quotes key material.

Besides the grant verifier, the identity module uses `decode_identity_token` and
`unverified_claims` to read OIDC identity tokens.
"""

from __future__ import annotations

import binascii
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt import exceptions as jwt_exceptions
from jwt.algorithms import Algorithm, get_default_algorithms

from agentlease.errors import ConfigurationError, GrantError, GrantExpired, GrantInvalid
from agentlease.grants._checks import (
    check_audience,
    check_header,
    check_issuer,
    check_times,
    optional_time,
    preview,
    require_string,
    require_time,
)
from agentlease.grants.keys import SigningKey, jwk_thumbprint

__all__ = [
    "PYJWT_ERRORS",
    "CompactToken",
    "GrantSigner",
    "PublicKey",
    "VerificationKey",
    "decode_identity_token",
    "load_verification_keys",
    "parse_compact",
    "translate_error",
    "unverified_claims",
    "verify_compact",
]

PublicKey: TypeAlias = (
    ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)
"""The public key types a verifier accepts."""

_PRIVATE_KEY_TYPES = (
    ec.EllipticCurvePrivateKey,
    rsa.RSAPrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
_PUBLIC_KEY_TYPES = (
    ec.EllipticCurvePublicKey,
    rsa.RSAPublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
)

# The asymmetric algorithms a key may be bound to. HMAC and "none" are absent on purpose, so
# no key, header or JWK can select them.
_ALGORITHMS: dict[str, Algorithm] = {
    name: algorithm
    for name, algorithm in get_default_algorithms().items()
    if name
    in {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
}
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_MIN_RSA_BITS = 2048
# JWK members that only a private or symmetric key has (RFC 7518 section 6).
_PRIVATE_JWK_MEMBERS = ("d", "dp", "dq", "k", "oth", "p", "q", "qi")
_VERIFIABLE_KTY = ("EC", "OKP", "RSA")
_BASE64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")
_TO_STANDARD_BASE64 = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE_BASE64 = bytes.maketrans(b"+/", b"-_")
_PADDING = (b"", b"", b"==", b"=")
# The characters that may end a canonical segment, by segment length modulo 4: a final
# character carries 4 (length 2 mod 4) or 2 (length 3 mod 4) unused bits, which must be zero.
_CANONICAL_LAST = {
    2: frozenset(_BASE64URL_ALPHABET[::16]),
    3: frozenset(_BASE64URL_ALPHABET[::4]),
}
_DEFAULT_IDENTITY_MAX_BYTES = 16 * 1024


# --- PyJWT error translation -------------------------------------------------------------

_RENEW = "request a new token from the issuer."

PYJWT_ERRORS: Mapping[type[Exception], tuple[type[GrantError], str, str]] = {
    jwt_exceptions.PyJWTError: (GrantInvalid, "invalid", f"Token is invalid; {_RENEW}"),
    jwt_exceptions.InvalidTokenError: (GrantInvalid, "invalid", f"Token is invalid; {_RENEW}"),
    jwt_exceptions.DecodeError: (
        GrantInvalid,
        "malformed",
        "Token is not a well-formed JWS; send the token unchanged as issued.",
    ),
    jwt_exceptions.InvalidSignatureError: (
        GrantInvalid,
        "bad_signature",
        "Token signature does not verify; the token was altered or signed by another key.",
    ),
    jwt_exceptions.ExpiredSignatureError: (GrantExpired, "expired", f"Token expired; {_RENEW}"),
    jwt_exceptions.InvalidAudienceError: (
        GrantInvalid,
        "wrong_audience",
        f"Token is for another audience; {_RENEW}",
    ),
    jwt_exceptions.InvalidIssuerError: (
        GrantInvalid,
        "wrong_issuer",
        "Token has another issuer; present a token from the expected issuer.",
    ),
    jwt_exceptions.InvalidIssuedAtError: (
        GrantInvalid,
        "invalid_claim",
        f"Token claim 'iat' is not a number; {_RENEW}",
    ),
    jwt_exceptions.ImmatureSignatureError: (
        GrantInvalid,
        "not_yet_valid",
        "Token is not valid yet; check the clocks of the issuer and this host.",
    ),
    jwt_exceptions.InvalidKeyError: (
        GrantInvalid,
        "invalid_key",
        "Token was checked against an unusable key; fix the verifier's key set.",
    ),
    jwt_exceptions.InvalidAlgorithmError: (
        GrantInvalid,
        "alg_not_allowed",
        "Token algorithm is not allowed; sign with the algorithm of the verifier's key.",
    ),
    jwt_exceptions.MissingRequiredClaimError: (
        GrantInvalid,
        "missing_claim",
        f"Token lacks a required claim; {_RENEW}",
    ),
    jwt_exceptions.PyJWKError: (
        GrantInvalid,
        "invalid_key",
        "A JWK cannot be used; fix the verifier's key set.",
    ),
    jwt_exceptions.MissingCryptographyError: (
        GrantInvalid,
        "invalid_key",
        "The 'cryptography' package is missing; install pyjwt[crypto].",
    ),
    jwt_exceptions.PyJWKSetError: (
        GrantInvalid,
        "invalid_jwks",
        "The JWK set has no usable key; publish the issuer's public keys in it.",
    ),
    jwt_exceptions.PyJWKClientError: (
        GrantInvalid,
        "jwks_unavailable",
        "The JWK set cannot be fetched; check the issuer's JWKS URL and that it is reachable.",
    ),
    jwt_exceptions.PyJWKClientConnectionError: (
        GrantInvalid,
        "jwks_unavailable",
        "The JWK set cannot be fetched; check the issuer's JWKS URL and that it is reachable.",
    ),
    jwt_exceptions.InvalidSubjectError: (
        GrantInvalid,
        "invalid_claim",
        f"Token claim 'sub' is invalid; {_RENEW}",
    ),
    jwt_exceptions.InvalidJTIError: (
        GrantInvalid,
        "invalid_claim",
        f"Token claim 'jti' is invalid; {_RENEW}",
    ),
}
"""Every PyJWT exception class, mapped to the agentlease error class, reason code and message."""


def translate_error(error: BaseException) -> GrantError:
    """Translate an exception raised inside PyJWT into a `GrantError`.

    PyJWT exceptions are looked up by class, walking the class hierarchy, so a subclass added
    in a later PyJWT version still maps to its base class's entry. `TypeError`, `ValueError`
    and `AttributeError` are what PyJWT's algorithms raise when a token is checked against a
    key of another type, such as an EC token against an RSA key.
    """
    for cls in type(error).__mro__:
        entry = PYJWT_ERRORS.get(cls)
        if entry is None:
            continue
        error_class, reason, message = entry
        if isinstance(error, jwt_exceptions.MissingRequiredClaimError):
            message = f"Token has no {preview(error.claim)} claim; {_RENEW}"
        return error_class(message, reason=reason)

    if isinstance(error, (TypeError, ValueError, AttributeError)):
        return GrantInvalid(
            "Token was checked against a key of another type; "
            "verify it with a key of the type its algorithm needs.",
            reason="wrong_key_type",
        )
    return GrantInvalid(f"Token is invalid; {_RENEW}", reason="invalid")


# --- Compact serialization --------------------------------------------------------------


class _DuplicateMemberError(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7519 section 4 lets a parser reject duplicate claim names. Rejecting them means no
    # two JSON parsers can disagree on which value of a duplicated claim counts.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateMemberError
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


# Built once: json.loads and json.dumps build a new decoder or encoder on every call that
# passes options. The decoder rejects NaN and Infinity, which are not JSON.
_JSON_DECODER = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant
)
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _b64encode(data: bytes) -> str:
    encoded = binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE_BASE64)
    return encoded.rstrip(b"=").decode("ascii")


def _b64decode(segment: bytes, part: str) -> bytes:
    # Only the unpadded base64url alphabet is accepted, and the encoding must be canonical
    # (unused trailing bits zero), so each token has exactly one spelling.
    remainder = len(segment) % 4
    if remainder == 1 or _BASE64URL.fullmatch(segment) is None:
        raise GrantInvalid(
            f"Token {part} is not unpadded base64url; send the token unchanged as issued.",
            reason="malformed",
        )
    if remainder and segment[-1] not in _CANONICAL_LAST[remainder]:
        raise GrantInvalid(
            f"Token {part} is not canonical base64url; send the token unchanged as issued.",
            reason="malformed",
        )
    return binascii.a2b_base64(segment.translate(_TO_STANDARD_BASE64) + _PADDING[remainder])


def _decode_json_object(data: bytes, part: str) -> dict[str, Any]:
    try:
        value = _JSON_DECODER.decode(data.decode("utf-8"))
    except _DuplicateMemberError:
        raise GrantInvalid(
            f"Token {part} repeats a member name; the issuer must send each name once.",
            reason="duplicate_member",
        ) from None
    except (ValueError, RecursionError):
        # UnicodeDecodeError and JSONDecodeError are both ValueErrors.
        raise GrantInvalid(
            f"Token {part} is not valid UTF-8 JSON; send the token unchanged as issued.",
            reason="malformed",
        ) from None
    if not isinstance(value, dict):
        raise GrantInvalid(
            f"Token {part} is not a JSON object; send the token unchanged as issued.",
            reason="malformed",
        )
    return cast("dict[str, Any]", value)


@dataclass(frozen=True, slots=True)
class CompactToken:
    """A compact JWS split into its parts; the payload is decoded only on request."""

    header: dict[str, Any]
    signing_input: bytes = field(repr=False)
    payload_segment: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    def claims(self) -> dict[str, Any]:
        """Decode the payload as a JSON object."""
        return _decode_json_object(_b64decode(self.payload_segment, "payload"), "payload")


def parse_compact(token: object, *, max_bytes: int) -> CompactToken:
    """Split a compact JWS and decode its header and signature.

    The size cap is checked before any decoding, so an oversized token costs nothing more
    than its length check.

    Raises:
        GrantInvalid: With reason ``oversized``, ``malformed`` or ``duplicate_member``.
    """
    if not isinstance(token, str):
        raise GrantInvalid(
            f"Token must be a str, not {type(token).__name__}; pass the compact JWS text.",
            reason="malformed",
        )
    if len(token) > max_bytes:
        raise GrantInvalid(
            f"Token is {len(token)} bytes, more than the limit of {max_bytes}; "
            "present a smaller token or raise the limit.",
            reason="oversized",
        )
    try:
        raw = token.encode("ascii")
    except UnicodeEncodeError:
        raise GrantInvalid(
            "Token contains non-ASCII characters; send the token unchanged as issued.",
            reason="malformed",
        ) from None

    segments = raw.split(b".")
    if len(segments) != 3:
        raise GrantInvalid(
            f"Token has {len(segments)} dot-separated segments, not the 3 of a compact JWS; "
            "encrypted (JWE) and JSON-serialized tokens are not accepted.",
            reason="malformed",
        )
    header_segment, payload_segment, signature_segment = segments
    header = _decode_json_object(_b64decode(header_segment, "header"), "header")
    signature = _b64decode(signature_segment, "signature")
    signing_input = raw[: len(header_segment) + 1 + len(payload_segment)]
    return CompactToken(header, signing_input, payload_segment, signature)


# --- Keys -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key bound to the one algorithm it verifies, prepared once."""

    kid: str
    algorithm: str
    key: PublicKey = field(repr=False)

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """Return whether `signature` is this key's signature over `signing_input`.

        Raises:
            GrantInvalid: PyJWT raised instead of returning False.
        """
        try:
            return _ALGORITHMS[self.algorithm].verify(signing_input, self.key, signature)
        except (jwt.PyJWTError, TypeError, ValueError, AttributeError) as error:
            raise translate_error(error) from None

    def public_jwk(self) -> dict[str, Any]:
        """Return the public key as a JWK with ``kid`` and ``alg``."""
        jwk = dict(_ALGORITHMS[self.algorithm].to_jwk(self.key, as_dict=True))
        return {**jwk, "kid": self.kid, "alg": self.algorithm}


def _algorithm_for_key(key: PublicKey) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = _EC_ALGORITHMS.get(key.curve.name)
        if algorithm is None:
            raise ConfigurationError(
                f"Elliptic curve {key.curve.name!r} is not supported; "
                "use a P-256, P-384 or P-521 key."
            )
        return algorithm
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    return "EdDSA"


def _bind(key: PublicKey, kid: str | None, algorithm: str) -> VerificationKey:
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        raise ConfigurationError(
            f"RSA key of {key.key_size} bits is too short; use at least {_MIN_RSA_BITS} bits."
        )
    algorithm_object = _ALGORITHMS[algorithm]
    try:
        # prepare_key checks that the key fits the algorithm: its family, and its curve for EC.
        algorithm_object.prepare_key(key)
        jwk = algorithm_object.to_jwk(key, as_dict=True)
    except (jwt.PyJWTError, TypeError, ValueError):
        raise ConfigurationError(
            f"A {type(key).__name__} cannot verify {algorithm} signatures; "
            "give the key the algorithm it was made for."
        ) from None
    return VerificationKey(kid or jwk_thumbprint(jwk), algorithm, key)


def _key_from_jwk(jwk: Mapping[str, Any]) -> VerificationKey:
    kty = jwk.get("kty")
    if kty == "oct":
        raise ConfigurationError(
            "A symmetric (oct) JWK cannot verify tokens, because agentlease never accepts HMAC "
            "signatures; publish the issuer's public key instead."
        )
    private_members = sorted(name for name in _PRIVATE_JWK_MEMBERS if name in jwk)
    if private_members:
        raise ConfigurationError(
            f"A JWK for verification contains private members {private_members}; "
            "publish only the public key and keep the private key secret."
        )
    if kty not in _VERIFIABLE_KTY:
        raise ConfigurationError(
            f"JWK key type {preview(kty)} is not supported; use an EC, RSA or OKP key."
        )
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise ConfigurationError(
            f"JWK has use {preview(use)}; a verification key must have use 'sig' or none."
        )
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise ConfigurationError(f"JWK kid {preview(kid)} is not a non-empty string; fix it.")
    algorithm = jwk.get("alg")
    if algorithm is not None and algorithm not in _ALGORITHMS:
        raise ConfigurationError(
            f"JWK algorithm {preview(algorithm)} is not allowed; use one of "
            f"{', '.join(sorted(_ALGORITHMS))}."
        )

    try:
        parsed = jwt.PyJWK(dict(jwk), algorithm=algorithm)
    except jwt.PyJWTError:
        raise ConfigurationError(
            f"JWK {preview(kid)} of type {kty} cannot be parsed; check its members."
        ) from None
    if parsed.algorithm_name not in _ALGORITHMS:
        raise ConfigurationError(
            f"JWK {preview(kid)} implies algorithm {parsed.algorithm_name!r}, which is not "
            "allowed; use a P-256, P-384, P-521, RSA or Ed25519 key."
        )
    key = parsed.key
    if not isinstance(key, _PUBLIC_KEY_TYPES):
        raise ConfigurationError(f"JWK {preview(kid)} is not a public key; publish a public key.")
    return _bind(key, kid, parsed.algorithm_name)


def _key_from_object(key: object) -> VerificationKey:
    if isinstance(key, VerificationKey):
        return key
    if isinstance(key, SigningKey):
        return _bind(key.public_key, key.key_id, key.algorithm)
    if isinstance(key, Mapping):
        return _key_from_jwk(cast("Mapping[str, Any]", key))
    if isinstance(key, _PRIVATE_KEY_TYPES):
        raise ConfigurationError(
            f"A verifier needs public keys, not a {type(key).__name__}; pass key.public_key()."
        )
    if isinstance(key, _PUBLIC_KEY_TYPES):
        return _bind(key, None, _algorithm_for_key(key))
    raise ConfigurationError(
        f"Cannot use a {type(key).__name__} as a verification key; pass a JWK set, JWKs, "
        "SigningKeys or cryptography public keys."
    )


def _keys_from_jwks(jwks: Mapping[str, Any]) -> list[VerificationKey]:
    members = jwks.get("keys")
    if not isinstance(members, list):
        raise ConfigurationError(
            "The JWK set has no 'keys' list; pass a JWK set such as LocalBroker.jwks()."
        )
    keys: list[VerificationKey] = []
    for member in cast("list[Any]", members):
        if not isinstance(member, Mapping):
            raise ConfigurationError("The JWK set contains a member that is not a JSON object.")
        jwk = cast("Mapping[str, Any]", member)
        # RFC 7517 section 5 recommends ignoring keys of unknown types, and encryption keys
        # cannot verify. A symmetric or private key is a dangerous mistake, so
        # `_key_from_jwk` raises for it.
        kty = jwk.get("kty")
        if (kty not in _VERIFIABLE_KTY and kty != "oct") or jwk.get("use") == "enc":
            continue
        keys.append(_key_from_jwk(jwk))
    return keys


def load_verification_keys(
    keys: Mapping[str, Any] | Sequence[Any] | SigningKey | PublicKey,
) -> dict[str, VerificationKey]:
    """Bind each trusted key to its ``kid`` and its one algorithm.

    Args:
        keys: A JWK set (``{"keys": [...]}``), one JWK, a `SigningKey`, a `cryptography`
            public key, or a sequence of JWKs, SigningKeys and public keys. A key without a
            ``kid`` gets its RFC 7638 thumbprint as ``kid``. An RSA key given as an object is
            bound to RS256; give it as a JWK with ``alg`` to pick another RSA algorithm.

    Raises:
        ConfigurationError: A key is symmetric, private, of an unsupported type or too weak;
            two keys share a ``kid``; or no key is usable.
    """
    if isinstance(keys, Mapping):
        bound = _keys_from_jwks(keys) if "keys" in keys else [_key_from_jwk(keys)]
    elif isinstance(keys, (str, bytes)):
        raise ConfigurationError(
            "Verification keys cannot be given as text; load PEM keys with cryptography, or "
            "pass a JWK set."
        )
    elif isinstance(keys, Sequence):
        bound = [_key_from_object(key) for key in keys]
    else:
        bound = [_key_from_object(keys)]

    by_kid: dict[str, VerificationKey] = {}
    for key in bound:
        if key.kid in by_kid and by_kid[key.kid] != key:
            raise ConfigurationError(
                f"Two verification keys share kid {key.kid!r}; give each key its own kid."
            )
        by_kid[key.kid] = key
    if not by_kid:
        raise ConfigurationError(
            "No usable verification key was given; pass the issuer's public keys."
        )
    return by_kid


# --- Signing and verifying --------------------------------------------------------------


class GrantSigner:
    """Signs claim sets as compact JWS with a `SigningKey`.

    The header is encoded once, so signing costs one JSON encoding and one ECDSA signature.
    """

    __slots__ = ("_key", "_prefix")

    def __init__(self, key: SigningKey, *, typ: str = "at+jwt") -> None:
        header = {"alg": key.algorithm, "kid": key.key_id, "typ": typ}
        encoded = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
        self._key = key
        self._prefix = _b64encode(encoded) + "."

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Return the compact JWS of `claims`.

        Raises:
            ConfigurationError: A claim value cannot be encoded as JSON.
        """
        try:
            payload = _JSON_ENCODER.encode(claims)
        except (TypeError, ValueError) as error:
            raise ConfigurationError(
                f"A grant claim cannot be encoded as JSON ({error}); use only strings, "
                "numbers, booleans, lists and dicts in claim values such as 'act'."
            ) from None
        signing_input = self._prefix + _b64encode(payload.encode("utf-8"))
        signature = self._key.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{_b64encode(signature)}"


def verify_compact(
    token: object,
    keys: Mapping[str, VerificationKey],
    *,
    max_bytes: int,
    typ: str | None,
    forbidden_typ: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Verify a compact JWS against trusted keys and return its ``kid`` and claims.

    The algorithm comes from the key that the ``kid`` names, never from the header: the
    header's ``alg`` must equal it. Claims are decoded only after the signature verifies.

    Raises:
        GrantInvalid: The token is oversized, malformed, has a rejected header, names an
            unknown ``kid`` or another algorithm than its key's, or its signature does not
            verify.
    """
    parsed = parse_compact(token, max_bytes=max_bytes)
    kid = check_header(parsed.header, typ=typ, forbidden_typ=forbidden_typ)

    key = keys.get(kid)
    if key is None:
        raise GrantInvalid(
            f"Token key id {preview(kid)} is not in the verifier's key set; "
            "refresh the issuer's JWK set if it rotated its key.",
            reason="unknown_kid",
        )
    if parsed.header["alg"] != key.algorithm:
        raise GrantInvalid(
            f"Token algorithm {preview(parsed.header['alg'])} does not match {key.algorithm}, "
            f"the algorithm of key {kid!r}; sign with that key's algorithm.",
            reason="alg_not_allowed",
        )
    if not key.verify(parsed.signing_input, parsed.signature):
        raise GrantInvalid(
            f"Token signature does not verify with key {kid!r}; the token was altered or "
            "signed by another key.",
            reason="bad_signature",
        )
    return kid, parsed.claims()


# --- Identity tokens --------------------------------------------------------------------


def unverified_claims(
    token: str, *, max_bytes: int = _DEFAULT_IDENTITY_MAX_BYTES
) -> dict[str, Any]:
    """Decode a token's claims without verifying anything; never trust the result.

    Raises:
        GrantInvalid: The token is oversized or malformed.
    """
    return parse_compact(token, max_bytes=max_bytes).claims()


def decode_identity_token(
    token: str,
    *,
    keys: Mapping[str, Any] | Sequence[Any] | None,
    issuer: str | None,
    audience: str | None,
    max_bytes: int,
    leeway: int = 30,
    max_lifetime: int | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Read an OIDC or JWT-SVID identity token, verifying it when keys are given.

    With `keys`, the rules of the grant verifier apply, with three differences. ``typ`` may be
    anything but ``at+jwt``, so a grant cannot pose as an identity. ``iat`` and ``nbf`` are
    optional. ``aud`` may also be a list of exactly one element, because Kubernetes service
    account tokens always carry a list. ``sub`` and ``exp`` are required. Without `keys` the
    claims are only parsed, and the caller must treat the identity as unverified.

    Args:
        token: The compact JWS.
        keys: The issuer's JWK set, or other keys that `load_verification_keys` accepts, or
            None to parse without verifying.
        issuer: The exact ``iss`` required; needed with `keys`.
        audience: The ``aud`` required; needed with `keys`.
        max_bytes: The size cap, checked before parsing.
        leeway: Seconds of clock skew tolerated.
        max_lifetime: The largest ``exp - iat`` accepted, or None for no limit.
        clock: Returns the current time in seconds since the epoch.

    Raises:
        ConfigurationError: `keys` are given without `issuer` and `audience`, or are unusable.
        GrantInvalid: The token fails a rule, named by ``reason``.
        GrantExpired: The token has expired.
    """
    if keys is None:
        return unverified_claims(token, max_bytes=max_bytes)
    if issuer is None or audience is None:
        raise ConfigurationError(
            "Verifying an identity token needs both issuer and audience; pass the values "
            "the token must carry."
        )

    _, claims = verify_compact(
        token,
        load_verification_keys(keys),
        max_bytes=max_bytes,
        typ=None,
        forbidden_typ="at+jwt",
    )
    check_issuer(require_string(claims, "iss"), issuer)
    check_audience(claims, audience, allow_list_of_one=True)
    require_string(claims, "sub")
    check_times(
        expires_at=require_time(claims, "exp"),
        issued_at=optional_time(claims, "iat"),
        not_before=optional_time(claims, "nbf"),
        now=clock(),
        leeway=leeway,
        max_lifetime=max_lifetime,
    )
    return claims
