"""Short-lived grants: minting, verification, revocation and the per-task cache.

A grant is an ES256-signed JWT access token (RFC 9068 profile, ``typ: at+jwt``) for exactly one
audience within one task. `LocalBroker` mints grants in process and publishes its key as a JWK
set. `GrantVerifier` checks grants wherever they are received. A `RevocationList` records the
grants and tasks that ended early.
"""

from agentlease.grants.broker import Broker, Grant, LocalBroker
from agentlease.grants.cache import GrantCache
from agentlease.grants.keys import SigningKey
from agentlease.grants.revocation import InMemoryRevocationList, RevocationList
from agentlease.grants.verifier import GrantClaims, GrantVerifier

__all__ = [
    "Broker",
    "Grant",
    "GrantCache",
    "GrantClaims",
    "GrantVerifier",
    "InMemoryRevocationList",
    "LocalBroker",
    "RevocationList",
    "SigningKey",
]
