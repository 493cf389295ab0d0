"""Grants: minting, claims, keys and JWK sets, key files, revocation, the cache, identity tokens."""

from __future__ import annotations

import base64
import doctest
import hashlib
import json
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm

from agentlease.errors import (
    ConfigurationError,
    GrantExpired,
    GrantInvalid,
    GrantRevoked,
)
from agentlease.grants import (
    Grant,
    GrantCache,
    GrantVerifier,
    InMemoryRevocationList,
    LocalBroker,
    SigningKey,
    _jwt,
    broker,
    cache,
    keys,
    revocation,
    verifier,
)
from agentlease.grants.keys import jwk_thumbprint

NOW = 1_700_000_000
SUBJECT = "spiffe://example.org/agent/research"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def local_broker(clock: Clock) -> LocalBroker:
    return LocalBroker(issuer="urn:agentlease:test", clock=clock)


def mint(target: LocalBroker, **changes: Any) -> Grant:
    arguments: dict[str, Any] = {
        "subject": SUBJECT,
        "audience": "route:fast",
        "scope": "invoke",
        "task_id": "task-1",
        "data_class": "internal",
        "lifetime": 300,
    }
    arguments.update(changes)
    return target.mint(**arguments)


def payload(grant: Grant) -> dict[str, Any]:
    return jwt.decode(grant.token, options={"verify_signature": False})


# --- Minting ----------------------------------------------------------------------------


def test_mint_returns_grant_fields(local_broker: LocalBroker) -> None:
    grant = mint(local_broker)

    assert grant.audience == "route:fast"
    assert grant.scope == "invoke"
    assert grant.task_id == "task-1"
    assert grant.subject == SUBJECT
    assert grant.issuer == "urn:agentlease:test"
    assert grant.key_id == local_broker.signing_key.key_id
    assert grant.issued_at == NOW
    assert grant.expires_at == NOW + 300
    assert grant.data_class == "internal"


def test_mint_token_header(local_broker: LocalBroker) -> None:
    header = jwt.get_unverified_header(mint(local_broker).token)

    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": local_broker.signing_key.key_id}


def test_mint_token_claims(local_broker: LocalBroker) -> None:
    grant = mint(local_broker)

    assert payload(grant) == {
        "iss": "urn:agentlease:test",
        "sub": SUBJECT,
        "aud": "route:fast",
        "exp": NOW + 300,
        "iat": NOW,
        "nbf": NOW,
        "jti": grant.jti,
        "scope": "invoke",
        "client_id": SUBJECT,
        "task_id": "task-1",
        "data_class": "internal",
    }


def test_mint_uses_given_client_id(local_broker: LocalBroker) -> None:
    grant = mint(local_broker, client_id="research-agent")

    assert payload(grant)["client_id"] == "research-agent"


def test_mint_includes_act_when_given(local_broker: LocalBroker) -> None:
    act = {"sub": "spiffe://example.org/agent/planner", "act": {"sub": "user:alice"}}

    grant = mint(local_broker, act=act)

    assert payload(grant)["act"] == act


def test_mint_omits_act_by_default(local_broker: LocalBroker) -> None:
    assert "act" not in payload(mint(local_broker))


def test_mint_jti_has_128_random_bits(local_broker: LocalBroker) -> None:
    jtis = {mint(local_broker).jti for _ in range(200)}

    assert len(jtis) == 200
    for jti in jtis:
        assert len(base64.urlsafe_b64decode(jti + "==")) == 16


def test_mint_caps_lifetime_at_max(clock: Clock) -> None:
    capped = LocalBroker(max_lifetime=120, clock=clock)

    grant = mint(capped, lifetime=3600)

    assert grant.expires_at - grant.issued_at == 120


@pytest.mark.parametrize("lifetime", [0, -5, True, 1.5, "300"])
def test_mint_rejects_invalid_lifetime(local_broker: LocalBroker, lifetime: object) -> None:
    with pytest.raises(ConfigurationError, match="lifetime"):
        mint(local_broker, lifetime=lifetime)


def test_mint_rejects_unknown_data_class(local_broker: LocalBroker) -> None:
    with pytest.raises(ConfigurationError, match="top-secret"):
        mint(local_broker, data_class="top-secret")


@pytest.mark.parametrize("argument", ["subject", "audience", "scope", "task_id"])
def test_mint_rejects_empty_argument(local_broker: LocalBroker, argument: str) -> None:
    with pytest.raises(ConfigurationError, match=argument):
        mint(local_broker, **{argument: ""})


def test_mint_rejects_unserializable_act(local_broker: LocalBroker) -> None:
    with pytest.raises(ConfigurationError, match="JSON"):
        mint(local_broker, act={"sub": object()})


def test_mint_rejects_revoked_task(local_broker: LocalBroker) -> None:
    local_broker.revoke_task("task-1", until=NOW + 300)

    with pytest.raises(GrantRevoked):
        mint(local_broker)


def test_grant_repr_omits_token(local_broker: LocalBroker) -> None:
    grant = mint(local_broker)

    assert grant.token not in repr(grant)
    assert grant.token.rsplit(".", 1)[1] not in repr(grant)


def test_grant_str_omits_token(local_broker: LocalBroker) -> None:
    grant = mint(local_broker)

    assert grant.token not in str(grant)


def test_grant_metadata_omits_token(local_broker: LocalBroker) -> None:
    grant = mint(local_broker)

    assert grant.metadata() == {
        "jti": grant.jti,
        "kid": grant.key_id,
        "aud": "route:fast",
        "scope": "invoke",
        "iss": "urn:agentlease:test",
        "sub": SUBJECT,
        "iat": NOW,
        "exp": NOW + 300,
    }


def test_grant_expires_within(local_broker: LocalBroker) -> None:
    grant = mint(local_broker)

    assert not grant.expires_within(30, NOW + 269)
    assert grant.expires_within(30, NOW + 270)
    assert grant.expires_within(0, NOW + 301)


# --- Keys and JWK sets ------------------------------------------------------------------


def test_jwks_publishes_public_key_only(local_broker: LocalBroker) -> None:
    (jwk,) = local_broker.jwks()["keys"]

    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert jwk["kid"] == local_broker.signing_key.key_id
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")


def test_jwks_verifies_grant_with_pyjwt(local_broker: LocalBroker) -> None:
    grant = mint(local_broker)
    key = jwt.PyJWK(local_broker.jwks()["keys"][0])

    claims = jwt.decode(
        grant.token,
        key,
        algorithms=["ES256"],
        audience="route:fast",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )

    assert claims["jti"] == grant.jti


def test_key_id_is_rfc7638_thumbprint() -> None:
    key = SigningKey.generate()
    jwk = key.public_jwk()
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]},
        separators=(",", ":"),
        sort_keys=True,
    )

    assert key.key_id == b64(hashlib.sha256(canonical.encode()).digest())


def test_jwk_thumbprint_ignores_optional_members() -> None:
    jwk = SigningKey.generate().public_jwk()

    assert jwk_thumbprint({**jwk, "kid": "other", "use": "enc"}) == jwk["kid"]


def test_jwk_thumbprint_rejects_missing_member() -> None:
    jwk = SigningKey.generate().public_jwk()
    del jwk["y"]

    with pytest.raises(ConfigurationError, match="'y'"):
        jwk_thumbprint(jwk)


def test_signing_key_repr_shows_kid_only() -> None:
    key = SigningKey.generate()

    assert repr(key) == f"SigningKey(kid={key.key_id!r})"


def test_signing_key_rejects_other_curve() -> None:
    with pytest.raises(ConfigurationError, match="P-256"):
        SigningKey(ec.generate_private_key(ec.SECP384R1()))


def test_signing_key_save_sets_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "grant-key.pem"

    SigningKey.generate().save(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_signing_key_save_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "state" / "keys" / "grant-key.pem"

    SigningKey.generate().save(path)

    assert path.is_file()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_signing_key_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    SigningKey.generate().save(tmp_path / "grant-key.pem")

    assert [p.name for p in tmp_path.iterdir()] == ["grant-key.pem"]


def test_signing_key_save_without_exist_ok_keeps_file(tmp_path: Path) -> None:
    path = tmp_path / "grant-key.pem"
    first = SigningKey.generate()
    first.save(path)

    with pytest.raises(FileExistsError):
        SigningKey.generate().save(path, exist_ok=False)

    assert SigningKey.load(path) == first


def test_signing_key_load_round_trip(tmp_path: Path) -> None:
    key = SigningKey.generate()
    key.save(tmp_path / "grant-key.pem")

    loaded = SigningKey.load(tmp_path / "grant-key.pem")

    assert loaded.key_id == key.key_id
    assert loaded.public_jwk() == key.public_jwk()


def test_signing_key_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        SigningKey.load(tmp_path / "missing.pem")


def test_signing_key_load_rejects_other_curve(tmp_path: Path) -> None:
    path = tmp_path / "p384.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    with pytest.raises(ConfigurationError, match="not a P-256 key"):
        SigningKey.load(path)


def test_signing_key_load_rejects_non_pem(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pem"
    path.write_text("not a key\n")

    with pytest.raises(ConfigurationError, match="unencrypted PEM"):
        SigningKey.load(path)


def test_signing_key_load_warns_when_readable_by_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "grant-key.pem"
    SigningKey.generate().save(path)
    os.chmod(path, 0o644)

    with caplog.at_level(logging.WARNING, logger="agentlease.grants.keys"):
        SigningKey.load(path)

    assert "chmod 600" in caplog.text


def test_signing_key_signature_verifies_as_es256() -> None:
    key = SigningKey.generate()
    signature = key.sign(b"message")

    algorithm = jwt.get_algorithm_by_name("ES256")

    assert len(signature) == 64
    assert algorithm.verify(b"message", key.public_key, signature)


# --- Key files shared between brokers ---------------------------------------------------


def test_local_broker_creates_missing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "grant-key.pem"

    created = LocalBroker(key_file=path)

    assert SigningKey.load(path) == created.signing_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_brokers_sharing_key_file_share_kid(tmp_path: Path) -> None:
    path = tmp_path / "grant-key.pem"

    first = LocalBroker(key_file=path)
    second = LocalBroker(key_file=path)

    assert first.jwks() == second.jwks()


def test_brokers_sharing_key_file_verify_each_other(tmp_path: Path) -> None:
    path = tmp_path / "grant-key.pem"
    first = LocalBroker(key_file=path)
    second = LocalBroker(key_file=path)

    grant = mint(first)
    claims = second.verifier().verify(grant.token, audience="route:fast")

    assert claims.jti == grant.jti


def test_local_broker_rejects_key_and_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        LocalBroker(key=SigningKey.generate(), key_file=tmp_path / "k.pem")


@pytest.mark.parametrize("max_lifetime", [0, -1, 1.5])
def test_local_broker_rejects_invalid_max_lifetime(max_lifetime: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_lifetime"):
        LocalBroker(max_lifetime=max_lifetime)


def test_local_broker_verifier_is_reused(local_broker: LocalBroker) -> None:
    assert local_broker.verifier() is local_broker.verifier()


# --- Verification -----------------------------------------------------------------------


def test_verify_returns_claims(local_broker: LocalBroker) -> None:
    grant = mint(local_broker, act={"sub": "user:alice"})

    claims = local_broker.verifier().verify(grant.token, audience="route:fast")

    assert claims.issuer == "urn:agentlease:test"
    assert claims.subject == SUBJECT
    assert claims.audience == "route:fast"
    assert claims.scope == "invoke"
    assert claims.task_id == "task-1"
    assert claims.data_class == "internal"
    assert claims.jti == grant.jti
    assert (claims.issued_at, claims.not_before, claims.expires_at) == (NOW, NOW, NOW + 300)
    assert claims.act == {"sub": "user:alice"}
    assert claims.client_id == SUBJECT
    assert claims.raw["jti"] == grant.jti


def test_verify_claims_raw_is_read_only(local_broker: LocalBroker) -> None:
    claims = local_broker.verifier().verify(mint(local_broker).token, audience="route:fast")

    with pytest.raises(TypeError):
        claims.raw["aud"] = "tool:other"  # pyright: ignore[reportIndexIssue]


def test_verify_claims_scopes(local_broker: LocalBroker) -> None:
    grant = mint(local_broker, scope="read write")

    claims = local_broker.verifier().verify(grant.token, audience="route:fast")

    assert claims.scopes == frozenset({"read", "write"})


def test_verifier_accepts_jwks(local_broker: LocalBroker, clock: Clock) -> None:
    grant_verifier = GrantVerifier(
        issuer="urn:agentlease:test", keys=local_broker.jwks(), clock=clock
    )

    grant = mint(local_broker)

    assert grant_verifier.verify(grant.token, audience="route:fast").jti == grant.jti


def test_verifier_accepts_public_key_object(local_broker: LocalBroker, clock: Clock) -> None:
    grant_verifier = GrantVerifier(
        issuer="urn:agentlease:test", keys=[local_broker.signing_key.public_key], clock=clock
    )

    grant = mint(local_broker)

    assert grant_verifier.key_ids == {local_broker.signing_key.key_id}
    assert grant_verifier.verify(grant.token, audience="route:fast").jti == grant.jti


def test_verifier_accepts_rsa_jwk_with_alg(clock: Clock) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    grant_verifier = GrantVerifier(
        issuer="urn:idp", keys={"keys": [{**jwk, "kid": "rsa-1", "alg": "PS256"}]}, clock=clock
    )
    claims = {
        "iss": "urn:idp",
        "sub": SUBJECT,
        "aud": "route:fast",
        "exp": NOW + 60,
        "iat": NOW,
        "nbf": NOW,
        "jti": "j",
        "scope": "invoke",
        "client_id": SUBJECT,
        "task_id": "t",
    }
    token = jwt.encode(
        claims, private_key, algorithm="PS256", headers={"kid": "rsa-1", "typ": "at+jwt"}
    )

    verified = grant_verifier.verify(token, audience="route:fast")

    assert verified.data_class is None


def test_verifier_skips_encryption_keys_in_jwks(local_broker: LocalBroker) -> None:
    encryption_jwk = {**SigningKey.generate().public_jwk(), "use": "enc"}
    jwks = {"keys": [encryption_jwk, *local_broker.jwks()["keys"]]}

    grant_verifier = GrantVerifier(issuer="urn:agentlease:test", keys=jwks)

    assert grant_verifier.key_ids == {local_broker.signing_key.key_id}


def test_verifier_rejects_duplicate_kid() -> None:
    first = SigningKey.generate().public_jwk()
    second = {**SigningKey.generate().public_jwk(), "kid": first["kid"]}

    with pytest.raises(ConfigurationError, match="share kid"):
        GrantVerifier(issuer="urn:agentlease:test", keys=[first, second])


def test_verifier_rejects_private_key_object() -> None:
    with pytest.raises(ConfigurationError, match="public keys"):
        GrantVerifier(issuer="urn:agentlease:test", keys=[ec.generate_private_key(ec.SECP256R1())])


def test_verifier_rejects_empty_key_set() -> None:
    with pytest.raises(ConfigurationError, match="No usable verification key"):
        GrantVerifier(issuer="urn:agentlease:test", keys={"keys": []})


def test_verifier_rejects_pem_text() -> None:
    with pytest.raises(ConfigurationError, match="text"):
        GrantVerifier(issuer="urn:agentlease:test", keys="-----BEGIN PUBLIC KEY-----")


@pytest.mark.parametrize(
    ("argument", "value"), [("max_lifetime", 0), ("max_token_bytes", -1), ("leeway", -1)]
)
def test_verifier_rejects_invalid_limit(argument: str, value: int) -> None:
    limits: dict[str, Any] = {argument: value}

    with pytest.raises(ConfigurationError, match=argument):
        GrantVerifier(issuer="urn:agentlease:test", keys=[SigningKey.generate()], **limits)


def test_verify_rejects_empty_expected_audience(local_broker: LocalBroker) -> None:
    with pytest.raises(ConfigurationError, match="audience"):
        local_broker.verifier().verify(mint(local_broker).token, audience="")


# --- Revocation -------------------------------------------------------------------------


def test_broker_revoke_rejects_grant(local_broker: LocalBroker) -> None:
    grant = mint(local_broker)
    other = mint(local_broker, audience="tool:search")

    local_broker.revoke(grant)

    with pytest.raises(GrantRevoked):
        local_broker.verifier().verify(grant.token, audience="route:fast")
    assert local_broker.verifier().verify(other.token, audience="tool:search").jti == other.jti


def test_broker_revoke_task_rejects_every_task_grant(local_broker: LocalBroker) -> None:
    grants = [mint(local_broker, audience=f"tool:{n}") for n in range(3)]

    local_broker.revoke_task("task-1", until=NOW + 300)

    for grant in grants:
        with pytest.raises(GrantRevoked):
            local_broker.verifier().verify(grant.token, audience=grant.audience)


def test_revoked_grant_entry_outlives_leeway(local_broker: LocalBroker) -> None:
    grant = mint(local_broker)
    local_broker.revoke(grant)

    assert local_broker.revocations.prune(now=NOW + 300 + 30) == 0
    assert local_broker.revocations.prune(now=NOW + 300 + 31) == 1


def test_revoke_task_entry_covers_longest_grant(local_broker: LocalBroker) -> None:
    local_broker.revoke_task("task-1", until=NOW + 10)

    assert local_broker.revocations.prune(now=NOW + 900 + 30) == 0
    assert local_broker.revocations.prune(now=NOW + 900 + 31) == 1


def test_revocation_list_reports_revoked_jti_and_task(clock: Clock) -> None:
    revocations = InMemoryRevocationList(clock=clock)
    revocations.revoke_jti("jti-1", until=NOW + 60)
    revocations.revoke_task("task-1", until=NOW + 60)

    assert revocations.is_revoked(jti="jti-1", task_id="task-2")
    assert revocations.is_revoked(jti="jti-2", task_id="task-1")
    assert not revocations.is_revoked(jti="jti-2", task_id="task-2")


def test_revocation_prune_drops_expired_entries(clock: Clock) -> None:
    revocations = InMemoryRevocationList(clock=clock)
    revocations.revoke_jti("short", until=NOW + 10)
    revocations.revoke_task("long", until=NOW + 100)

    clock.now = NOW + 50
    dropped = revocations.prune()

    assert dropped == 1
    assert len(revocations) == 1
    assert not revocations.is_revoked(jti="short", task_id="none")
    assert revocations.is_revoked(jti="none", task_id="long")


def test_revocation_later_until_wins(clock: Clock) -> None:
    revocations = InMemoryRevocationList(clock=clock)
    revocations.revoke_jti("jti-1", until=NOW + 100)
    revocations.revoke_jti("jti-1", until=NOW + 10)

    assert revocations.prune(now=NOW + 50) == 0


def test_revocation_prunes_on_write_after_interval(clock: Clock) -> None:
    revocations = InMemoryRevocationList(clock=clock, prune_interval=60)
    revocations.revoke_jti("old", until=NOW + 5)

    clock.now = NOW + 61
    revocations.revoke_jti("new", until=NOW + 120)

    assert len(revocations) == 1


def test_revocation_memory_stays_flat(clock: Clock) -> None:
    revocations = InMemoryRevocationList(clock=clock, prune_interval=3600)
    sizes: list[int] = []

    for n in range(20_000):
        clock.now = NOW + n
        revocations.revoke_jti(f"jti-{n}", until=NOW + n + 100)
        sizes.append(len(revocations))

    # Only the last 100 entries are in force at any time; pruning keeps the rest bounded.
    assert max(sizes) <= 1024
    assert revocations.is_revoked(jti="jti-19999", task_id="none")


def test_revocation_list_is_thread_safe(clock: Clock) -> None:
    revocations = InMemoryRevocationList(clock=clock)

    def revoke_many(prefix: str) -> None:
        for n in range(500):
            revocations.revoke_jti(f"{prefix}-{n}", until=NOW + 60)

    threads = [threading.Thread(target=revoke_many, args=(f"t{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(revocations) == 4000


# --- Grant cache ------------------------------------------------------------------------


def test_cache_get_missing_returns_none(clock: Clock) -> None:
    assert GrantCache(clock=clock).get("route:fast", "invoke") is None


def test_cache_returns_put_grant(local_broker: LocalBroker, clock: Clock) -> None:
    grant_cache = GrantCache(clock=clock)
    grant = mint(local_broker)

    grant_cache.put(grant)

    assert grant_cache.get("route:fast", "invoke") is grant


def test_cache_keys_by_audience_and_scope(local_broker: LocalBroker, clock: Clock) -> None:
    grant_cache = GrantCache(clock=clock)
    grant_cache.put(mint(local_broker))

    assert grant_cache.get("route:fast", "read") is None
    assert grant_cache.get("route:slow", "invoke") is None


def test_cache_skips_grant_within_refresh_margin(local_broker: LocalBroker, clock: Clock) -> None:
    grant_cache = GrantCache(refresh_margin=30, clock=clock)
    grant_cache.put(mint(local_broker))

    clock.now = NOW + 269
    assert grant_cache.get("route:fast", "invoke") is not None
    clock.now = NOW + 270
    assert grant_cache.get("route:fast", "invoke") is None


def test_cache_grants_lists_replaced_grants(local_broker: LocalBroker, clock: Clock) -> None:
    grant_cache = GrantCache(clock=clock)
    first = mint(local_broker)
    second = mint(local_broker)

    grant_cache.put(first)
    grant_cache.put(second)
    grant_cache.put(second)

    assert grant_cache.grants() == [first, second]
    assert grant_cache.get("route:fast", "invoke") is second


def test_cache_grants_drops_long_expired(local_broker: LocalBroker, clock: Clock) -> None:
    grant_cache = GrantCache(retention=300, clock=clock)
    old = mint(local_broker)
    grant_cache.put(old)

    clock.now = NOW + 300 + 301
    fresh = mint(local_broker)
    grant_cache.put(fresh)

    assert grant_cache.grants() == [fresh]


def test_cache_put_is_thread_safe(local_broker: LocalBroker, clock: Clock) -> None:
    grant_cache = GrantCache(clock=clock)
    grants = [mint(local_broker, audience=f"tool:{n}") for n in range(400)]

    def put_all(part: list[Grant]) -> None:
        for grant in part:
            grant_cache.put(grant)

    threads = [threading.Thread(target=put_all, args=(grants[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(grant_cache.grants()) == 400
    assert len(grant_cache) == 400


def test_cache_rejects_negative_margin() -> None:
    with pytest.raises(ConfigurationError, match="refresh_margin"):
        GrantCache(refresh_margin=-1)


# --- Identity tokens --------------------------------------------------------------------


@pytest.fixture(scope="module")
def idp_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def idp_jwks(idp_key: rsa.RSAPrivateKey) -> dict[str, Any]:
    jwk = RSAAlgorithm.to_jwk(idp_key.public_key(), as_dict=True)
    return {"keys": [{**jwk, "kid": "idp-1", "alg": "RS256", "use": "sig"}]}


def identity_token(
    idp_key: rsa.RSAPrivateKey, *, headers: dict[str, Any] | None = None, **changes: Any
) -> str:
    claims: dict[str, Any] = {
        "iss": "https://kubernetes.default.svc",
        "sub": "system:serviceaccount:agents:research",
        "aud": ["agentlease"],
        "exp": NOW + 3600,
        "iat": NOW,
        "nbf": NOW,
    }
    claims.update(changes)
    return jwt.encode(
        claims, idp_key, algorithm="RS256", headers={"kid": "idp-1", **(headers or {})}
    )


def decode_identity(token: str, jwks: dict[str, Any] | None, **changes: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "keys": jwks,
        "issuer": "https://kubernetes.default.svc",
        "audience": "agentlease",
        "max_bytes": 16_384,
        "clock": Clock(),
    }
    arguments.update(changes)
    return _jwt.decode_identity_token(token, **arguments)


def test_identity_token_verified_with_jwks(
    idp_key: rsa.RSAPrivateKey, idp_jwks: dict[str, Any]
) -> None:
    claims = decode_identity(identity_token(idp_key), idp_jwks)

    assert claims["sub"] == "system:serviceaccount:agents:research"


def test_identity_token_without_keys_is_only_parsed(idp_key: rsa.RSAPrivateKey) -> None:
    token = identity_token(idp_key, exp=NOW - 10_000, iss="https://elsewhere")

    claims = decode_identity(token, None, issuer=None, audience=None)

    assert claims["iss"] == "https://elsewhere"


def test_identity_token_rejects_multiple_audiences(
    idp_key: rsa.RSAPrivateKey, idp_jwks: dict[str, Any]
) -> None:
    token = identity_token(idp_key, aud=["agentlease", "vault"])

    with pytest.raises(GrantInvalid) as caught:
        decode_identity(token, idp_jwks)

    assert caught.value.reason == "multiple_audiences"


def test_identity_token_rejects_grant(idp_key: rsa.RSAPrivateKey, idp_jwks: dict[str, Any]) -> None:
    token = identity_token(idp_key, headers={"typ": "at+jwt"})

    with pytest.raises(GrantInvalid) as caught:
        decode_identity(token, idp_jwks)

    assert caught.value.reason == "wrong_typ"


def test_identity_token_rejects_wrong_issuer(
    idp_key: rsa.RSAPrivateKey, idp_jwks: dict[str, Any]
) -> None:
    with pytest.raises(GrantInvalid) as caught:
        decode_identity(identity_token(idp_key, iss="https://attacker.invalid"), idp_jwks)

    assert caught.value.reason == "wrong_issuer"


def test_identity_token_rejects_expired(
    idp_key: rsa.RSAPrivateKey, idp_jwks: dict[str, Any]
) -> None:
    with pytest.raises(GrantExpired):
        decode_identity(identity_token(idp_key, exp=NOW - 60), idp_jwks)


def test_identity_token_requires_subject(
    idp_key: rsa.RSAPrivateKey, idp_jwks: dict[str, Any]
) -> None:
    token = jwt.encode(
        {"iss": "https://kubernetes.default.svc", "aud": "agentlease", "exp": NOW + 60},
        idp_key,
        algorithm="RS256",
        headers={"kid": "idp-1"},
    )

    with pytest.raises(GrantInvalid) as caught:
        decode_identity(token, idp_jwks)

    assert caught.value.reason == "missing_claim"


def test_identity_token_needs_issuer_and_audience(
    idp_key: rsa.RSAPrivateKey, idp_jwks: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError, match="issuer and audience"):
        decode_identity(identity_token(idp_key), idp_jwks, audience=None)


def test_unverified_claims_returns_payload(local_broker: LocalBroker) -> None:
    grant = mint(local_broker)

    assert _jwt.unverified_claims(grant.token)["jti"] == grant.jti


# --- Documentation examples -------------------------------------------------------------


@pytest.mark.parametrize(
    "module", [broker, cache, keys, revocation, verifier], ids=lambda module: module.__name__
)
def test_docstring_examples_run(module: Any) -> None:
    failures, tried = doctest.testmod(module, raise_on_error=False, report=True)

    assert tried > 0
    assert failures == 0
