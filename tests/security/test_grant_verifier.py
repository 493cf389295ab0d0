"""One test per attack on the grant verifier, each named after the threat it stops.

Every forged token below differs from a valid grant in exactly one way, and each test checks
the ``reason`` code, so a test passes only when the intended rule rejected the token.
Tokens are built here with PyJWT and `cryptography` directly, not with agentlease's signer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from agentlease.errors import (
    ConfigurationError,
    GrantError,
    GrantExpired,
    GrantInvalid,
    GrantRevoked,
)
from agentlease.grants import GrantVerifier, InMemoryRevocationList, SigningKey

NOW = 1_700_000_000
ISSUER = "urn:agentlease:test"
AUDIENCE = "route:fast"
SUBJECT = "spiffe://example.org/agent/research"
TRUSTED_KEY = SigningKey.generate()
ATTACKER_KEY = ec.generate_private_key(ec.SECP256R1())
REMOVE = object()


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64_json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def es256_signer(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    def sign(message: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def make_header(**changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": "ES256", "typ": "at+jwt", "kid": TRUSTED_KEY.key_id}
    header.update(changes)
    return {name: value for name, value in header.items() if value is not REMOVE}


def make_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": SUBJECT,
        "aud": AUDIENCE,
        "exp": NOW + 300,
        "iat": NOW,
        "nbf": NOW,
        "jti": "jti-1",
        "scope": "invoke",
        "client_id": SUBJECT,
        "task_id": "task-1",
        "data_class": "internal",
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not REMOVE}


def forge(
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    *,
    sign: Callable[[bytes], bytes] = TRUSTED_KEY.sign,
    raw_payload: str | None = None,
) -> str:
    """Build a compact JWS by hand, signed by the trusted key unless `sign` is given."""
    header_segment = b64_json(make_header() if header is None else header)
    if raw_payload is not None:
        payload_segment = b64(raw_payload.encode("utf-8"))
    else:
        payload_segment = b64_json(make_claims() if claims is None else claims)
    signing_input = f"{header_segment}.{payload_segment}"
    return f"{signing_input}.{b64(sign(signing_input.encode('ascii')))}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def revocations(clock: Clock) -> InMemoryRevocationList:
    return InMemoryRevocationList(clock=clock)


@pytest.fixture
def verifier(clock: Clock, revocations: InMemoryRevocationList) -> GrantVerifier:
    return GrantVerifier(issuer=ISSUER, keys=[TRUSTED_KEY], revocations=revocations, clock=clock)


def rejection(verifier: GrantVerifier, token: object) -> GrantError:
    with pytest.raises(GrantError) as caught:
        verifier.verify(token, audience=AUDIENCE)  # pyright: ignore[reportArgumentType]
    return caught.value


def test_accepts_well_formed_grant(verifier: GrantVerifier) -> None:
    claims = verifier.verify(forge(), audience=AUDIENCE)

    assert claims.jti == "jti-1"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_rejects_alg_none(verifier: GrantVerifier, alg: str) -> None:
    token = f"{b64_json(make_header(alg=alg))}.{b64_json(make_claims())}."

    error = rejection(verifier, token)

    assert isinstance(error, GrantInvalid)
    assert error.reason == "alg_none"


def test_rejects_alg_none_made_by_pyjwt(verifier: GrantVerifier) -> None:
    token = jwt.encode(
        make_claims(),
        "",
        algorithm="none",
        headers={"kid": TRUSTED_KEY.key_id, "typ": "at+jwt"},
    )

    assert rejection(verifier, token).reason == "alg_none"


@pytest.mark.parametrize("secret_form", ["pem", "jwk_json", "x_coordinate"])
def test_rejects_hmac_key_confusion(verifier: GrantVerifier, secret_form: str) -> None:
    # The classic attack: HMAC-sign with the issuer's public key, which is public, hoping the
    # verifier passes that same key to HMAC verification.
    secrets = {
        "pem": TRUSTED_KEY.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk_json": json.dumps(TRUSTED_KEY.public_jwk()).encode(),
        "x_coordinate": TRUSTED_KEY.public_jwk()["x"].encode(),
    }
    secret = secrets[secret_form]
    token = forge(
        make_header(alg="HS256"),
        sign=lambda message: hmac.new(secret, message, hashlib.sha256).digest(),
    )

    error = rejection(verifier, token)

    assert error.reason == "alg_hmac"


@pytest.mark.parametrize("alg", ["ES384", "ES512", "RS256", "PS256", "EdDSA", "ES256K"])
def test_rejects_algorithm_substitution(verifier: GrantVerifier, alg: str) -> None:
    token = forge(make_header(alg=alg))

    assert rejection(verifier, token).reason == "alg_not_allowed"


def test_rejects_missing_alg(verifier: GrantVerifier) -> None:
    assert rejection(verifier, forge(make_header(alg=REMOVE))).reason == "alg_not_allowed"


def test_rejects_ec_token_for_rsa_key(clock: Clock) -> None:
    # PyJWT raises TypeError when an EC token is checked against an RSA key; the verifier
    # must reject the token cleanly instead.
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    verifier = GrantVerifier(
        issuer=ISSUER, keys={"keys": [{**rsa_jwk, "kid": "rsa-1"}]}, clock=clock
    )
    token = forge(make_header(kid="rsa-1"), sign=es256_signer(ATTACKER_KEY))

    error = rejection(verifier, token)

    assert isinstance(error, GrantInvalid)
    assert error.reason == "alg_not_allowed"


def test_rejects_unknown_crit(verifier: GrantVerifier) -> None:
    token = forge(make_header(crit=["urn:example:policy"], **{"urn:example:policy": "x"}))

    assert rejection(verifier, token).reason == "unsupported_crit"


def test_rejects_jku_header(verifier: GrantVerifier) -> None:
    token = forge(make_header(jku="https://attacker.invalid/jwks.json"))

    assert rejection(verifier, token).reason == "forbidden_header"


def test_rejects_x5u_header(verifier: GrantVerifier) -> None:
    token = forge(make_header(x5u="https://attacker.invalid/cert.pem"))

    assert rejection(verifier, token).reason == "forbidden_header"


def test_rejects_jwk_header(verifier: GrantVerifier) -> None:
    # The attacker embeds their own public key and signs with its private half.
    attacker_jwk = ECAlgorithm.to_jwk(ATTACKER_KEY.public_key(), as_dict=True)
    token = forge(make_header(jwk=attacker_jwk), sign=es256_signer(ATTACKER_KEY))

    assert rejection(verifier, token).reason == "forbidden_header"


def test_rejects_x5c_header(verifier: GrantVerifier) -> None:
    token = forge(make_header(x5c=["MIIBszCCAVmgAwIBAgIU"]))

    assert rejection(verifier, token).reason == "forbidden_header"


def test_rejects_unencoded_payload_header(verifier: GrantVerifier) -> None:
    token = forge(make_header(b64=False))

    assert rejection(verifier, token).reason == "unsupported_header"


def test_rejects_wrong_typ(verifier: GrantVerifier) -> None:
    token = forge(make_header(typ="JWT"))

    assert rejection(verifier, token).reason == "wrong_typ"


def test_rejects_missing_typ(verifier: GrantVerifier) -> None:
    token = forge(make_header(typ=REMOVE))

    assert rejection(verifier, token).reason == "wrong_typ"


def test_rejects_missing_kid(verifier: GrantVerifier) -> None:
    token = forge(make_header(kid=REMOVE))

    assert rejection(verifier, token).reason == "missing_kid"


def test_rejects_non_string_kid(verifier: GrantVerifier) -> None:
    token = forge(make_header(kid=["a", "b"]))

    assert rejection(verifier, token).reason == "missing_kid"


def test_rejects_unknown_kid(verifier: GrantVerifier) -> None:
    token = forge(make_header(kid="attacker-key"), sign=es256_signer(ATTACKER_KEY))

    assert rejection(verifier, token).reason == "unknown_kid"


def test_rejects_signature_by_untrusted_key(verifier: GrantVerifier) -> None:
    token = forge(sign=es256_signer(ATTACKER_KEY))

    assert rejection(verifier, token).reason == "bad_signature"


def test_rejects_tampered_payload(verifier: GrantVerifier) -> None:
    header, _, signature = forge(make_header(), make_claims(aud="route:other")).split(".")
    token = f"{header}.{b64_json(make_claims())}.{signature}"

    assert rejection(verifier, token).reason == "bad_signature"


def test_rejects_truncated_signature(verifier: GrantVerifier) -> None:
    header, payload, signature = forge().split(".")
    token = f"{header}.{payload}.{signature[:64]}"

    assert rejection(verifier, token).reason == "bad_signature"


def test_rejects_wrong_issuer(verifier: GrantVerifier) -> None:
    token = forge(claims=make_claims(iss="urn:agentlease:other"))

    assert rejection(verifier, token).reason == "wrong_issuer"


def test_rejects_issuer_prefix_match(verifier: GrantVerifier) -> None:
    token = forge(claims=make_claims(iss=ISSUER + ":evil"))

    assert rejection(verifier, token).reason == "wrong_issuer"


def test_rejects_wrong_audience(verifier: GrantVerifier) -> None:
    token = forge(claims=make_claims(aud="tool:delete_everything"))

    assert rejection(verifier, token).reason == "wrong_audience"


@pytest.mark.parametrize("audiences", [[AUDIENCE], [AUDIENCE, "tool:other"], []])
def test_rejects_multi_valued_audience(verifier: GrantVerifier, audiences: list[str]) -> None:
    # A list is rejected even when its only element matches: grants name one audience.
    token = forge(claims=make_claims(aud=audiences))

    assert rejection(verifier, token).reason == "multiple_audiences"


def test_rejects_non_string_audience(verifier: GrantVerifier) -> None:
    token = forge(claims=make_claims(aud={"name": AUDIENCE}))

    assert rejection(verifier, token).reason == "invalid_claim"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_rejects_numeric_string_exp(verifier: GrantVerifier, claim: str) -> None:
    token = forge(claims=make_claims(**{claim: str(make_claims()[claim])}))

    assert rejection(verifier, token).reason == "invalid_claim"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_rejects_float_time_claim(verifier: GrantVerifier, claim: str) -> None:
    token = forge(claims=make_claims(**{claim: float(make_claims()[claim])}))

    assert rejection(verifier, token).reason == "invalid_claim"


def test_rejects_boolean_time_claim(verifier: GrantVerifier) -> None:
    token = forge(claims=make_claims(nbf=True))

    assert rejection(verifier, token).reason == "invalid_claim"


def test_rejects_huge_exp(verifier: GrantVerifier) -> None:
    token = forge(claims=make_claims(exp=10**30))

    assert rejection(verifier, token).reason == "invalid_claim"


def test_rejects_negative_iat(verifier: GrantVerifier) -> None:
    token = forge(claims=make_claims(iat=-1))

    assert rejection(verifier, token).reason == "invalid_claim"


def test_rejects_lifetime_beyond_max(verifier: GrantVerifier) -> None:
    token = forge(claims=make_claims(exp=NOW + 901))

    assert rejection(verifier, token).reason == "invalid_lifetime"


def test_rejects_exp_not_after_iat(verifier: GrantVerifier) -> None:
    token = forge(claims=make_claims(exp=NOW))

    assert rejection(verifier, token).reason == "invalid_lifetime"


def test_rejects_iat_in_future(verifier: GrantVerifier) -> None:
    token = forge(claims=make_claims(iat=NOW + 31, nbf=NOW, exp=NOW + 331))

    assert rejection(verifier, token).reason == "issued_in_future"


def test_rejects_nbf_in_future(verifier: GrantVerifier) -> None:
    token = forge(claims=make_claims(nbf=NOW + 31))

    assert rejection(verifier, token).reason == "not_yet_valid"


def test_rejects_expired_grant(verifier: GrantVerifier, clock: Clock) -> None:
    clock.now = NOW + 300 + 30

    error = rejection(verifier, forge())

    assert isinstance(error, GrantExpired)
    assert error.reason == "expired"


def test_accepts_grant_within_leeway(verifier: GrantVerifier, clock: Clock) -> None:
    clock.now = NOW + 300 + 29

    assert verifier.verify(forge(), audience=AUDIENCE).expires_at == NOW + 300


@pytest.mark.parametrize(
    "claim", ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "scope", "task_id", "client_id"]
)
def test_rejects_missing_required_claim(verifier: GrantVerifier, claim: str) -> None:
    token = forge(claims=make_claims(**{claim: REMOVE}))

    error = rejection(verifier, token)

    assert error.reason == "missing_claim"
    assert repr(claim) in str(error)


@pytest.mark.parametrize("claim", ["iss", "sub", "jti", "scope", "task_id", "client_id"])
def test_rejects_non_string_claim(verifier: GrantVerifier, claim: str) -> None:
    token = forge(claims=make_claims(**{claim: 42}))

    assert rejection(verifier, token).reason == "invalid_claim"


def test_rejects_unknown_data_class(verifier: GrantVerifier) -> None:
    token = forge(claims=make_claims(data_class="top-secret"))

    assert rejection(verifier, token).reason == "invalid_claim"


def test_rejects_act_that_is_not_object(verifier: GrantVerifier) -> None:
    token = forge(claims=make_claims(act="spiffe://example.org/agent/planner"))

    assert rejection(verifier, token).reason == "invalid_claim"


def test_rejects_revoked_jti(verifier: GrantVerifier, revocations: InMemoryRevocationList) -> None:
    revocations.revoke_jti("jti-1", until=NOW + 330)

    error = rejection(verifier, forge())

    assert isinstance(error, GrantRevoked)
    assert error.reason == "revoked"


def test_rejects_revoked_task(verifier: GrantVerifier, revocations: InMemoryRevocationList) -> None:
    revocations.revoke_task("task-1", until=NOW + 330)

    error = rejection(verifier, forge(claims=make_claims(jti="jti-2")))

    assert isinstance(error, GrantRevoked)


def test_rejects_oversized_token(verifier: GrantVerifier) -> None:
    # The cap applies before parsing, so even text that is no JWT at all is rejected for size.
    assert rejection(verifier, "A" * 8193).reason == "oversized"


def test_rejects_oversized_signed_grant(verifier: GrantVerifier) -> None:
    token = forge(claims=make_claims(padding="x" * 8192))

    assert rejection(verifier, token).reason == "oversized"


def test_rejects_duplicate_claims(verifier: GrantVerifier) -> None:
    # Parsers differ on which duplicate wins, so a token could mean one thing here and
    # another downstream.
    payload = json.dumps(make_claims())[:-1] + ', "aud": "tool:other"}'
    token = forge(raw_payload=payload)

    assert rejection(verifier, token).reason == "duplicate_member"


def test_rejects_duplicate_header_members(verifier: GrantVerifier) -> None:
    header = json.dumps(make_header())[:-1] + ', "alg": "none"}'
    token = f"{b64(header.encode())}.{b64_json(make_claims())}.AAAA"

    assert rejection(verifier, token).reason == "duplicate_member"


def test_rejects_non_json_number_constant(verifier: GrantVerifier) -> None:
    payload = json.dumps(make_claims())[:-1] + ', "extra": NaN}'
    token = forge(raw_payload=payload)

    assert rejection(verifier, token).reason == "malformed"


def test_rejects_deeply_nested_header(clock: Clock) -> None:
    # The header is decoded before the signature is checked, so nesting deeper than any
    # Python recursion limit must fail cleanly, not with RecursionError.
    verifier = GrantVerifier(
        issuer=ISSUER, keys=[TRUSTED_KEY], max_token_bytes=400_000, clock=clock
    )
    header = '{"alg":"ES256","x":' + "[" * 100_000 + "]" * 100_000 + "}"
    token = f"{b64(header.encode())}.{b64_json(make_claims())}.AAAA"

    assert rejection(verifier, token).reason == "malformed"


def test_rejects_non_object_payload(verifier: GrantVerifier) -> None:
    token = forge(raw_payload="[1, 2, 3]")

    assert rejection(verifier, token).reason == "malformed"


@pytest.mark.parametrize("alteration", ["padding", "standard_alphabet", "whitespace"])
def test_rejects_non_base64url_segment(verifier: GrantVerifier, alteration: str) -> None:
    header, payload, signature = forge().split(".")
    altered_signature = {
        "padding": f"{signature}==",
        "standard_alphabet": f"+/{signature[2:]}",
        "whitespace": f"{signature[:10]} {signature[10:]}",
    }[alteration]
    token = f"{header}.{payload}.{altered_signature}"

    assert rejection(verifier, token).reason == "malformed"


def test_rejects_stripped_signature(verifier: GrantVerifier) -> None:
    header, payload, _ = forge().split(".")

    assert rejection(verifier, f"{header}.{payload}.").reason == "bad_signature"


def test_rejects_non_canonical_base64(verifier: GrantVerifier) -> None:
    # 64 signature bytes encode to 86 characters, so the last one carries 4 unused bits.
    # Setting one of them decodes to the same bytes, giving a second spelling of the token.
    header, payload, signature = forge().split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(signature[-1]) | 1]
    token = f"{header}.{payload}.{signature[:-1]}{last}"

    assert rejection(verifier, token).reason == "malformed"


def test_rejects_jwe_token(verifier: GrantVerifier) -> None:
    token = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.AAAA.AAAA.AAAA.AAAA"

    assert rejection(verifier, token).reason == "malformed"


def test_rejects_non_ascii_token(verifier: GrantVerifier) -> None:
    header, payload, signature = forge().split(".")
    token = f"{header}.{payload}.{signature[:-1]}\u00e9"

    assert rejection(verifier, token).reason == "malformed"


@pytest.mark.parametrize("token", [None, b"eyJ.eyJ.sig", 42])
def test_rejects_non_string_token(verifier: GrantVerifier, token: object) -> None:
    assert rejection(verifier, token).reason == "malformed"


def test_error_messages_never_contain_token(verifier: GrantVerifier, clock: Clock) -> None:
    tokens = [
        forge(make_header(alg="HS256")),
        forge(make_header(kid="unknown")),
        forge(sign=es256_signer(ATTACKER_KEY)),
        forge(claims=make_claims(aud="route:other")),
        forge(claims=make_claims(exp=str(NOW))),
    ]
    clock.now = NOW + 10_000
    tokens.append(forge())

    for token in tokens:
        error = rejection(verifier, token)
        signature = token.rsplit(".", 1)[1]
        assert token not in str(error)
        assert signature not in str(error)
        assert signature not in repr(error)


def test_rejects_symmetric_verification_key() -> None:
    # Anyone who has an HMAC key can sign with it, so a verifier must never hold one.
    jwks = {"keys": [{"kty": "oct", "k": b64(b"shared-secret"), "kid": "hmac"}]}

    with pytest.raises(ConfigurationError, match="symmetric"):
        GrantVerifier(issuer=ISSUER, keys=jwks)


def test_rejects_private_jwk_as_verification_key() -> None:
    private_jwk = ECAlgorithm.to_jwk(ATTACKER_KEY, as_dict=True)

    with pytest.raises(ConfigurationError, match="private members") as caught:
        GrantVerifier(issuer=ISSUER, keys={"keys": [private_jwk]})

    assert private_jwk["d"] not in str(caught.value)


def test_rejects_short_rsa_verification_key() -> None:
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505

    with pytest.raises(ConfigurationError, match="1024 bits"):
        GrantVerifier(issuer=ISSUER, keys=[weak_key.public_key()])


def test_rejects_hmac_algorithm_in_jwk() -> None:
    jwk = {**TRUSTED_KEY.public_jwk(), "alg": "HS256"}

    with pytest.raises(ConfigurationError, match="not allowed"):
        GrantVerifier(issuer=ISSUER, keys=[jwk])
