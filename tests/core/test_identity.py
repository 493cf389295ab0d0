"""Identity sources: the development identity and a rotating OIDC token file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import agentlease
from agentlease.errors import ConfigurationError, IdentityError

ISSUER = "https://issuer.example.org"
AUDIENCE = "agentlease"


class Issuer:
    """A test OIDC issuer: an EC key, its JWKS, and tokens signed with it."""

    def __init__(self, kid: str = "issuer-key-1") -> None:
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": kid, "alg": "ES256", "use": "sig"}]}

    def token(self, subject: str, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "sub": subject,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            **claims,
        }
        return jwt.encode(payload, self.key, algorithm="ES256", headers={"kid": self.kid})


def write_token(path: Path, token: str, *, bump: int = 0) -> None:
    path.write_text(token, encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump * 1_000_000_000))


def test_development_identity_is_unverified() -> None:
    identity = agentlease.DevelopmentIdentity("spiffe://example.org/agent/research").get()
    assert identity.id == "spiffe://example.org/agent/research"
    assert identity.verified is False
    assert identity.trust_domain == "example.org"


def test_development_identity_rejects_invalid_spiffe_id() -> None:
    with pytest.raises(ConfigurationError, match="not-a-spiffe-id"):
        agentlease.DevelopmentIdentity("not-a-spiffe-id")


def test_oidc_file_verified_with_jwks(tmp_path: Path) -> None:
    issuer = Issuer()
    path = tmp_path / "token"
    write_token(path, issuer.token("system:serviceaccount:agents:research"))
    source = agentlease.OIDCTokenFile(path, jwks=issuer.jwks, issuer=ISSUER, audience=AUDIENCE)
    identity = source.get()
    assert identity.verified is True
    assert identity.id == f"{ISSUER}#system:serviceaccount:agents:research"
    assert identity.source == "oidc-file"


def test_oidc_file_rereads_rotated_token(tmp_path: Path) -> None:
    issuer = Issuer()
    path = tmp_path / "token"
    write_token(path, issuer.token("agent-a"))
    source = agentlease.OIDCTokenFile(path, jwks=issuer.jwks, issuer=ISSUER, audience=AUDIENCE)
    assert source.get().subject == "agent-a"
    write_token(path, issuer.token("agent-b"), bump=5)
    assert source.get().subject == "agent-b"


def test_oidc_file_without_jwks_is_unverified(tmp_path: Path) -> None:
    path = tmp_path / "token"
    write_token(path, Issuer().token("spiffe://example.org/agent/ci"))
    identity = agentlease.OIDCTokenFile(path).get()
    assert identity.verified is False
    assert identity.id == "spiffe://example.org/agent/ci"


def test_oidc_file_signed_by_other_issuer_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "token"
    write_token(path, Issuer().token("agent-a"))
    trusted = Issuer()
    source = agentlease.OIDCTokenFile(path, jwks=trusted.jwks, issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(IdentityError, match=str(path)):
        source.get()


def test_oidc_file_missing_names_path(tmp_path: Path) -> None:
    source = agentlease.OIDCTokenFile(tmp_path / "absent")
    with pytest.raises(IdentityError, match="absent"):
        source.get()


def test_oidc_file_repr_hides_token(tmp_path: Path) -> None:
    token = Issuer().token("agent-a")
    path = tmp_path / "token"
    write_token(path, token)
    source = agentlease.OIDCTokenFile(path)
    identity = source.get()
    assert token not in repr(source)
    assert token not in repr(identity)


def test_task_runs_as_oidc_identity(tmp_path: Path) -> None:
    issuer = Issuer()
    path = tmp_path / "token"
    write_token(path, issuer.token("agent-a"))
    runtime = agentlease.Runtime(
        identity=agentlease.OIDCTokenFile(path, jwks=issuer.jwks, issuer=ISSUER, audience=AUDIENCE),
        audit=agentlease.audit.AuditLog(agentlease.audit.MemoryAuditSink()),
    )
    with agentlease.task("oidc", runtime=runtime) as opened:
        grant = opened.grant("tool:crm", "call_tool")
        claims = runtime.broker.verifier().verify(grant.token, audience="tool:crm")
    assert opened.identity.verified is True
    assert claims.subject == f"{ISSUER}#agent-a"
