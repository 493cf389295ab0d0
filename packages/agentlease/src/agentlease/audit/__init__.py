"""The tamper-evident audit log, its review tools, and agentlease's OpenTelemetry helpers.

Every task is one audit session. Each event of the session is an `AuditRecord`, appended by
an `AuditLog` to a SHA-256 hash chain and written to sinks such as a JSONL file.
`verify_log` checks a file's chain, `render_tree` draws its sessions for a reviewer, and
`agentlease audit` does both from the command line. Spans are started with the helpers of
`agentlease.audit.tracing`, whose attribute names live in `agentlease.audit.semconv`.
"""

from __future__ import annotations

from agentlease.audit.hashing import canonical_json, stable_hash
from agentlease.audit.log import AuditLog, AuditSink, FsyncMode, JsonlAuditSink, MemoryAuditSink
from agentlease.audit.record import (
    GENESIS_HASH,
    SCHEMA_VERSION,
    AuditRecord,
    CredentialInfo,
    DecisionInfo,
    ErrorInfo,
    UsageInfo,
)
from agentlease.audit.tree import render_tree
from agentlease.audit.verify import VerifyReport, read_log, verify_log

__all__ = [
    "GENESIS_HASH",
    "SCHEMA_VERSION",
    "AuditLog",
    "AuditRecord",
    "AuditSink",
    "CredentialInfo",
    "DecisionInfo",
    "ErrorInfo",
    "FsyncMode",
    "JsonlAuditSink",
    "MemoryAuditSink",
    "UsageInfo",
    "VerifyReport",
    "canonical_json",
    "read_log",
    "render_tree",
    "stable_hash",
    "verify_log",
]
