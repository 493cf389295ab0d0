"""Workload identities: who an agent is, and the sources that prove it."""

from agentlease.identity.model import IdentitySource, WorkloadIdentity
from agentlease.identity.sources import DevelopmentIdentity, OIDCTokenFile

__all__ = ["DevelopmentIdentity", "IdentitySource", "OIDCTokenFile", "WorkloadIdentity"]
