"""Audit log: records, the hash chain, JSONL files, verification, the review tree, hashing."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from agentlease.audit import (
    GENESIS_HASH,
    AuditLog,
    AuditRecord,
    CredentialInfo,
    DecisionInfo,
    ErrorInfo,
    JsonlAuditSink,
    MemoryAuditSink,
    UsageInfo,
    canonical_json,
    read_log,
    render_tree,
    stable_hash,
    verify_log,
)
from agentlease.errors import AuditChainBroken, AuditError, ConfigurationError, PolicyDenied

ACTOR = "spiffe://example.org/agent"
TIME_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


class StepClock:
    """A clock that starts at 2026-01-01T00:00:00Z and moves 0.25 s per reading."""

    def __init__(self) -> None:
        self.now = 1767225600.0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now


@dataclasses.dataclass(frozen=True)
class PolicyDecision:
    allowed: bool
    policy_ids: tuple[str, ...]
    reason: str


@dataclasses.dataclass(frozen=True)
class TokenCounts:
    input_tokens: int
    output_tokens: int
    total_tokens: int


class FailOnceSink:
    def __init__(self) -> None:
        self.failed = False

    def write(self, record: AuditRecord) -> None:
        if not self.failed:
            self.failed = True
            raise OSError("disk full")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "audit.jsonl"


def append_events(log: AuditLog, count: int, *, session_id: str = "task-1") -> list[AuditRecord]:
    return [
        log.append(session_id=session_id, action="model.call", actor=ACTOR, resource=f"route:r{i}")
        for i in range(count)
    ]


def write_log(path: Path, count: int) -> list[AuditRecord]:
    with AuditLog.to_file(path, clock=StepClock()) as log:
        return append_events(log, count)


def lines_of(path: Path) -> list[str]:
    """Split a log into lines at "\n" only, as JSONL readers do (not at U+2028)."""
    parts = path.read_text(encoding="utf-8").split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def rehash(line: str) -> str:
    """Recompute a record line's hash, as a forger who edits a record would."""
    data = json.loads(line)
    data.pop("hash")
    data["hash"] = hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()
    return canonical_json(data) + "\n"


# -- append ----------------------------------------------------------------------------------


def test_append_assigns_chain_fields() -> None:
    log = AuditLog(MemoryAuditSink(), chain_id="chain-1", clock=StepClock())

    first, second = append_events(log, 2)

    assert first.chain_id == "chain-1"
    assert (first.seq, second.seq) == (0, 1)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert re.fullmatch(r"[0-9a-f]{64}", first.hash)
    assert first.time == "2026-01-01T00:00:00.250000Z"
    assert TIME_FORMAT.fullmatch(second.time)


def test_append_hash_covers_canonical_json() -> None:
    log = AuditLog(MemoryAuditSink())

    record = log.append(session_id="task-1", action="task.start", actor=ACTOR)

    body = record.model_dump(mode="json", exclude={"hash"})
    expected = hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()
    assert record.hash == expected


def test_append_line_equals_canonical_json(log_path: Path) -> None:
    awkward = 'quote " backslash \\ tab \t nul \x00 é 𝄞 \u2028 \u2029 \x7f </script>'
    with AuditLog.to_file(log_path) as log:
        log.append(
            session_id=awkward,
            parent_session_id=awkward,
            task_name=awkward,
            action=awkward,
            actor=awkward,
            on_behalf_of=awkward,
            resource=awkward,
            outcome="error",
            decision=DecisionInfo(allowed=False, policy_ids=(awkward, "b"), reason=awkward),
            credential=CredentialInfo(mode="grant", jti=awkward, kid="k", aud="a", exp=2**40),
            error=ErrorInfo(type=awkward, message=awkward),
            usage=UsageInfo(input_tokens=1, output_tokens=2, total_tokens=3),
            args_hash="a" * 64,
            result_hash="b" * 64,
            attributes={"z": [1, 2.5, None, True], "a": {"y": awkward, "x": {}}},
            trace_id="0" * 31 + "1",
            span_id="0" * 15 + "2",
        )

    (line,) = lines_of(log_path)
    assert line == canonical_json(json.loads(line)) + "\n"


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"b": "x", "a": 1, "c": True, "d": False, "e": None},
        {"n": -(2**70), "s": 'quote " \\ \x00 é 𝄞 \u2028'},
        {"f": 0.1, "g": 1e300},
        {"nested": {"z": [1, {"y": None}]}},
    ],
)
def test_append_attributes_equal_canonical_json(log_path: Path, attributes: dict[str, Any]) -> None:
    with AuditLog.to_file(log_path) as log:
        log.append(session_id="t", action="finding", actor=ACTOR, attributes=attributes)

    (line,) = lines_of(log_path)
    assert line == canonical_json(json.loads(line)) + "\n"
    assert json.loads(line)["attributes"] == attributes


def test_append_record_equals_validated_record(log_path: Path) -> None:
    with AuditLog.to_file(log_path) as log:
        record = log.append(
            session_id="task-1",
            action="tool.call",
            actor=ACTOR,
            decision=DecisionInfo(allowed=True, policy_ids=("p1",), reason="ok"),
            credential=CredentialInfo(mode="grant", jti="j1", kid="k1", aud="tool:t", exp=10),
            usage=UsageInfo(input_tokens=1, output_tokens=2, total_tokens=3),
            attributes={"call_id": "c1"},
        )

    assert record == AuditRecord.model_validate(record.model_dump())
    assert read_log(log_path) == [record]


def test_append_accepts_policy_decision_object() -> None:
    log = AuditLog(MemoryAuditSink())
    decision = PolicyDecision(allowed=False, policy_ids=("forbid-high-risk",), reason="risky")

    record = log.append(session_id="t", action="tool.call", actor=ACTOR, decision=decision)

    assert record.decision == DecisionInfo(
        allowed=False, policy_ids=("forbid-high-risk",), reason="risky"
    )


def test_append_accepts_usage_object() -> None:
    log = AuditLog(MemoryAuditSink())

    record = log.append(
        session_id="t", action="model.call", actor=ACTOR, usage=TokenCounts(3, 4, 7)
    )

    assert record.usage == UsageInfo(input_tokens=3, output_tokens=4, total_tokens=7)


def test_append_accepts_mappings() -> None:
    log = AuditLog(MemoryAuditSink())

    record = log.append(
        session_id="t",
        action="tool.call",
        actor=ACTOR,
        decision={"allowed": True, "policy_ids": ["p1"], "reason": "r"},
        credential={"mode": "grant", "jti": "j", "kid": "k", "aud": "tool:x", "exp": 5},
        error={"type": "ValueError", "message": "m"},
        usage={"input_tokens": 1},
    )

    assert record.decision == DecisionInfo(allowed=True, policy_ids=("p1",), reason="r")
    assert record.credential == CredentialInfo(mode="grant", jti="j", kid="k", aud="tool:x", exp=5)
    assert record.error == ErrorInfo(type="ValueError", message="m")
    assert record.usage == UsageInfo(input_tokens=1)


@pytest.mark.parametrize("outcome", ["ok", "denied", "error", "cancelled"])
def test_append_outcome_survives_verification(log_path: Path, outcome: str) -> None:
    with AuditLog.to_file(log_path) as log:
        log.append(session_id="t", action="task.end", actor=ACTOR, outcome=outcome)

    assert verify_log(log_path).records == 1
    assert read_log(log_path)[0].outcome == outcome


def test_append_rejects_invalid_outcome() -> None:
    log = AuditLog(MemoryAuditSink())

    with pytest.raises(ConfigurationError, match="'maybe'"):
        log.append(session_id="t", action="task.start", actor=ACTOR, outcome="maybe")


def test_append_rejects_invalid_trace_id() -> None:
    log = AuditLog(MemoryAuditSink())

    with pytest.raises(ConfigurationError, match="trace_id"):
        log.append(session_id="t", action="task.start", actor=ACTOR, trace_id="XYZ", span_id=None)


def test_append_stores_non_json_attributes_as_repr(log_path: Path) -> None:
    odd_attributes: dict[Any, Any] = {"members": frozenset({1}), "ratio": float("nan"), 3: "x"}
    with AuditLog.to_file(log_path) as log:
        record = log.append(
            session_id="t",
            action="finding",
            actor=ACTOR,
            attributes=odd_attributes,
        )

    assert record.attributes == {"members": "frozenset({1})", "ratio": "nan", "3": "x"}
    assert verify_log(log_path).records == 1


def test_append_escapes_lone_surrogates(log_path: Path) -> None:
    with AuditLog.to_file(log_path) as log:
        record = log.append(
            session_id="t",
            task_name="name \ud800",
            action="finding",
            actor=ACTOR,
            attributes={"text": "\udcff"},
        )

    assert record.task_name == "name \\ud800"
    assert record.attributes == {"text": "\\udcff"}
    assert verify_log(log_path).records == 1


def test_append_after_close_raises() -> None:
    log = AuditLog(MemoryAuditSink())
    log.close()

    with pytest.raises(AuditError, match="closed"):
        log.append(session_id="t", action="task.start", actor=ACTOR)


def test_close_twice_is_harmless(log_path: Path) -> None:
    log = AuditLog.to_file(log_path)

    log.close()
    log.close()

    assert log_path.exists()


def test_audit_log_needs_a_sink() -> None:
    with pytest.raises(ConfigurationError, match="at least one sink"):
        AuditLog([])


def test_sink_failure_raises_and_keeps_other_sinks() -> None:
    memory = MemoryAuditSink()
    log = AuditLog([FailOnceSink(), memory])

    with pytest.raises(AuditError, match="disk full"):
        log.append(session_id="t", action="task.start", actor=ACTOR)
    after = log.append(session_id="t", action="task.end", actor=ACTOR)

    assert [record.seq for record in memory.records] == [0, 1]
    assert after.prev_hash == memory.records[0].hash


def test_concurrent_appends_keep_one_chain(log_path: Path) -> None:
    memory = MemoryAuditSink()
    log = AuditLog([JsonlAuditSink(log_path), memory])
    threads = [
        threading.Thread(target=append_events, args=(log, 200), kwargs={"session_id": f"t{n}"})
        for n in range(8)
    ]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()

    report = verify_log(log_path)
    assert report.records == 1600
    assert report.sessions == 8
    assert [record.seq for record in memory.records] == list(range(1600))


# -- record models ---------------------------------------------------------------------------


def test_error_info_keeps_agentlease_message() -> None:
    error = PolicyDenied("Tool 'x' is denied.", action="call_tool", resource="tool:x")

    info = ErrorInfo.from_exception(error)

    assert info == ErrorInfo(type="agentlease.errors.PolicyDenied", message="Tool 'x' is denied.")


def test_error_info_withholds_foreign_message() -> None:
    info = ErrorInfo.from_exception(ValueError("the user's prompt text"))

    assert info == ErrorInfo(type="ValueError", message="")


def test_error_info_includes_message_on_request() -> None:
    info = ErrorInfo.from_exception(ValueError("x" * 600), include_message=True)

    assert info.message == "x" * 500


def test_credential_info_from_grant() -> None:
    @dataclasses.dataclass
    class Grant:
        token: str
        jti: str
        key_id: str
        audience: str
        expires_at: int

    grant = Grant(token="eyJ.secret.token", jti="j1", key_id="k1", audience="route:a", expires_at=9)

    info = CredentialInfo.from_grant(grant)

    assert info == CredentialInfo(mode="grant", jti="j1", kid="k1", aud="route:a", exp=9)
    assert "eyJ" not in info.model_dump_json()


def test_credential_token_field_is_rejected() -> None:
    with pytest.raises(ValidationError):
        CredentialInfo.model_validate({"mode": "grant", "token": "eyJ.secret.token"})


def test_invalid_credential_message_omits_token() -> None:
    log = AuditLog(MemoryAuditSink())

    with pytest.raises(ConfigurationError) as raised:
        log.append(
            session_id="t",
            action="model.call",
            actor=ACTOR,
            credential={"mode": "grant", "token": "eyJ.secret.token"},
        )

    assert "token" in str(raised.value)
    assert "eyJ.secret.token" not in str(raised.value)


# -- JSONL files -----------------------------------------------------------------------------


def test_to_file_continues_chain_on_reopen(log_path: Path) -> None:
    first = write_log(log_path, 2)

    with AuditLog.to_file(log_path) as log:
        assert log.chain_id == first[0].chain_id
        continued = log.append(session_id="task-2", action="task.start", actor=ACTOR)

    assert continued.seq == 2
    assert continued.prev_hash == first[1].hash
    assert verify_log(log_path).records == 3


def test_reopen_adds_missing_final_newline(log_path: Path) -> None:
    write_log(log_path, 2)
    log_path.write_bytes(log_path.read_bytes().rstrip(b"\n"))

    with AuditLog.to_file(log_path) as log:
        log.append(session_id="task-2", action="task.start", actor=ACTOR)

    assert verify_log(log_path).records == 3


def test_reopen_rejects_broken_last_line(log_path: Path) -> None:
    write_log(log_path, 2)
    with log_path.open("a", encoding="utf-8") as file:
        file.write('{"action": "task.start"')

    with pytest.raises(AuditChainBroken) as raised:
        AuditLog.to_file(log_path)

    assert raised.value.line == 3


def test_reopen_rejects_edited_last_record(log_path: Path) -> None:
    write_log(log_path, 2)
    lines = lines_of(log_path)
    lines[1] = lines[1].replace('"model.call"', '"model.cal"')
    log_path.write_text("".join(lines), encoding="utf-8")

    with pytest.raises(AuditChainBroken) as raised:
        JsonlAuditSink(log_path)

    assert raised.value.line == 2


def test_reopen_with_other_chain_id_raises(log_path: Path) -> None:
    write_log(log_path, 1)

    with pytest.raises(ConfigurationError, match="chain_id 'other'"):
        AuditLog.to_file(log_path, chain_id="other")


def test_files_of_different_chains_raise(tmp_path: Path) -> None:
    write_log(tmp_path / "a.jsonl", 1)
    sinks = [JsonlAuditSink(tmp_path / "a.jsonl"), JsonlAuditSink(tmp_path / "b.jsonl")]

    with pytest.raises(ConfigurationError, match="end in different records"):
        AuditLog(sinks)

    for sink in sinks:
        sink.close()


@pytest.mark.parametrize("fsync", ["always", "flush", "never"])
def test_jsonl_sink_writes_each_fsync_mode(log_path: Path, fsync: Any) -> None:
    log = AuditLog.to_file(log_path, fsync=fsync)

    append_events(log, 2)
    log.flush()

    assert len(lines_of(log_path)) == 2
    log.close()


def test_jsonl_sink_rejects_unknown_fsync_mode(log_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="'sometimes'"):
        JsonlAuditSink(log_path, fsync="sometimes")  # type: ignore[arg-type]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_jsonl_sink_creates_private_file(log_path: Path) -> None:
    write_log(log_path, 1)

    assert log_path.stat().st_mode & 0o777 == 0o600


def test_jsonl_sink_writes_records_it_is_given(log_path: Path) -> None:
    memory = MemoryAuditSink()
    append_events(AuditLog(memory), 2)
    sink = JsonlAuditSink(log_path)

    for record in memory.records:
        sink.write(record)
    sink.close()

    assert read_log(log_path) == memory.records
    assert verify_log(log_path).records == 2


def test_audit_log_path_is_first_file(log_path: Path) -> None:
    with AuditLog([MemoryAuditSink(), JsonlAuditSink(log_path)]) as log:
        assert log.path == log_path
    assert AuditLog(MemoryAuditSink()).path is None


# -- verification ----------------------------------------------------------------------------


def test_verify_reports_counts(log_path: Path) -> None:
    with AuditLog.to_file(log_path, chain_id="chain-1") as log:
        append_events(log, 2, session_id="a")
        last = append_events(log, 1, session_id="b")[-1]

    report = verify_log(log_path)

    assert report.records == 3
    assert report.sessions == 2
    assert report.chain_id == "chain-1"
    assert report.last_hash == last.hash


def test_verify_accepts_empty_log(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.touch()

    report = verify_log(log_path)

    assert (report.records, report.sessions, report.last_hash) == (0, 0, GENESIS_HASH)


def test_verify_detects_edited_record(log_path: Path) -> None:
    write_log(log_path, 3)
    lines = lines_of(log_path)
    lines[1] = lines[1].replace('"route:r1"', '"route:r9"')
    log_path.write_text("".join(lines), encoding="utf-8")

    with pytest.raises(AuditChainBroken, match="edited") as raised:
        verify_log(log_path)

    assert raised.value.line == 2
    assert raised.value.path == str(log_path)


def test_verify_detects_edited_record_with_recomputed_hash(log_path: Path) -> None:
    write_log(log_path, 3)
    lines = lines_of(log_path)
    lines[1] = rehash(lines[1].replace('"route:r1"', '"route:r9"'))
    log_path.write_text("".join(lines), encoding="utf-8")

    with pytest.raises(AuditChainBroken, match="prev_hash") as raised:
        verify_log(log_path)

    assert raised.value.line == 3


def test_verify_detects_deleted_record(log_path: Path) -> None:
    write_log(log_path, 3)
    lines = lines_of(log_path)
    del lines[1]
    log_path.write_text("".join(lines), encoding="utf-8")

    with pytest.raises(AuditChainBroken, match="deleted") as raised:
        verify_log(log_path)

    assert raised.value.line == 2


def test_verify_detects_deleted_first_record(log_path: Path) -> None:
    write_log(log_path, 3)
    lines = lines_of(log_path)
    log_path.write_text("".join(lines[1:]), encoding="utf-8")

    with pytest.raises(AuditChainBroken, match="deleted") as raised:
        verify_log(log_path)

    assert raised.value.line == 1


def test_verify_detects_reordered_records(log_path: Path) -> None:
    write_log(log_path, 4)
    lines = lines_of(log_path)
    lines[1], lines[2] = lines[2], lines[1]
    log_path.write_text("".join(lines), encoding="utf-8")

    with pytest.raises(AuditChainBroken) as raised:
        verify_log(log_path)

    assert raised.value.line == 2


def test_verify_detects_duplicated_record(log_path: Path) -> None:
    write_log(log_path, 3)
    lines = lines_of(log_path)
    lines.insert(2, lines[1])
    log_path.write_text("".join(lines), encoding="utf-8")

    with pytest.raises(AuditChainBroken, match="reordered or copied") as raised:
        verify_log(log_path)

    assert raised.value.line == 3


def test_verify_detects_record_of_other_chain(tmp_path: Path) -> None:
    write_log(tmp_path / "a.jsonl", 2)
    write_log(tmp_path / "b.jsonl", 3)
    lines = lines_of(tmp_path / "a.jsonl") + lines_of(tmp_path / "b.jsonl")[2:]
    (tmp_path / "mixed.jsonl").write_text("".join(lines), encoding="utf-8")

    with pytest.raises(AuditChainBroken, match="chain_id") as raised:
        verify_log(tmp_path / "mixed.jsonl")

    assert raised.value.line == 3


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        (b"\n", "empty"),
        (b"not json\n", "not valid JSON"),
        (b"[1, 2]\n", "not a JSON object"),
        (b'{"action": "x"}\n', "no hash"),
        (b"\xff\xfe\n", "UTF-8"),
    ],
)
def test_verify_detects_malformed_line(log_path: Path, bad_line: bytes, problem: str) -> None:
    write_log(log_path, 2)
    lines = log_path.read_bytes().splitlines(keepends=True)
    log_path.write_bytes(lines[0] + bad_line + lines[1])

    with pytest.raises(AuditChainBroken, match=problem) as raised:
        verify_log(log_path)

    assert raised.value.line == 2


def test_verify_detects_schema_violation(log_path: Path) -> None:
    write_log(log_path, 1)
    data = json.loads(log_path.read_text(encoding="utf-8"))
    data["seq"] = "zero"
    log_path.write_text(rehash(canonical_json(data)), encoding="utf-8")

    with pytest.raises(AuditChainBroken, match="seq") as raised:
        verify_log(log_path)

    assert raised.value.line == 1


def test_truncated_tail_changes_last_hash(log_path: Path) -> None:
    write_log(log_path, 3)
    saved = verify_log(log_path).last_hash
    log_path.write_text("".join(lines_of(log_path)[:2]), encoding="utf-8")

    report = verify_log(log_path)

    assert report.records == 2
    assert report.last_hash != saved


def test_read_log_rejects_invalid_line(log_path: Path) -> None:
    write_log(log_path, 1)
    with log_path.open("a", encoding="utf-8") as file:
        file.write("{}\n")

    with pytest.raises(AuditChainBroken, match="audit schema") as raised:
        read_log(log_path)

    assert raised.value.line == 2


# -- review tree -----------------------------------------------------------------------------


def nested_session_records() -> list[AuditRecord]:
    sink = MemoryAuditSink()
    log = AuditLog(sink, chain_id="c", clock=StepClock())

    def parent(action: str, **fields: Any) -> None:
        log.append(session_id="task-a", task_name="report", actor=ACTOR, action=action, **fields)

    def child(action: str, **fields: Any) -> None:
        log.append(
            session_id="task-b",
            parent_session_id="task-a",
            task_name="search",
            actor=ACTOR,
            action=action,
            **fields,
        )

    parent("task.start", on_behalf_of="alice", attributes={"purpose": "weekly"})
    parent(
        "model.call",
        resource="route:fast",
        decision=DecisionInfo(allowed=True, policy_ids=("grant-routes",), reason="grant ok"),
        credential=CredentialInfo(
            mode="grant", jti="Zx81kq0e3Jd9a7Fb", kid="k1", aud="route:fast", exp=1767226200
        ),
        usage=UsageInfo(input_tokens=12, output_tokens=30, total_tokens=42),
    )
    child("task.start")
    child(
        "tool.call",
        resource="tool:delete_files",
        outcome="denied",
        decision=DecisionInfo(allowed=False, policy_ids=("high-risk",), reason="unverified"),
    )
    child("task.end")
    parent(
        "model.call",
        resource="route:legacy",
        credential=CredentialInfo(mode="api_key"),
        outcome="error",
        error=ErrorInfo(type="agentlease.errors.ProviderUnavailable", message="refused"),
    )
    parent("task.end")
    return sink.records


def test_tree_nests_child_sessions() -> None:
    tree = render_tree(nested_session_records())

    assert tree.splitlines() == [
        f"session task-a  task=report  actor={ACTOR}  on_behalf_of=alice",
        "├── #0  2026-01-01T00:00:00.250000Z  task.start  purpose=weekly  ok",
        "├── #1  2026-01-01T00:00:00.500000Z  model.call  route:fast  "
        'allow [grant-routes] "grant ok"  '
        "credential=grant jti=Zx81kq0e… kid=k1 exp=2026-01-01T00:10:00Z  "
        "tokens in=12 out=30  ok",
        f"├── session task-b  task=search  actor={ACTOR}",
        "│   ├── #2  2026-01-01T00:00:00.750000Z  task.start  ok",
        "│   ├── #3  2026-01-01T00:00:01.000000Z  tool.call  tool:delete_files  "
        'DENY [high-risk] "unverified"  DENIED',
        "│   └── #4  2026-01-01T00:00:01.250000Z  task.end  ok",
        "├── #5  2026-01-01T00:00:01.500000Z  model.call  route:legacy  "
        "credential=API_KEY (static key)  "
        "ERROR agentlease.errors.ProviderUnavailable: refused",
        "└── #6  2026-01-01T00:00:01.750000Z  task.end  ok",
    ]


def test_tree_orders_records_by_seq() -> None:
    records = nested_session_records()

    assert render_tree(list(reversed(records))) == render_tree(records)


def test_tree_filters_one_session() -> None:
    tree = render_tree(nested_session_records(), session_id="task-b")

    assert tree.splitlines()[0] == f"session task-b  task=search  actor={ACTOR}"
    assert "task-a" not in tree
    assert len(tree.splitlines()) == 4


def test_tree_unknown_session_raises() -> None:
    with pytest.raises(ConfigurationError, match="'missing'"):
        render_tree(nested_session_records(), session_id="missing")


def test_tree_marks_missing_parent() -> None:
    records = [r for r in nested_session_records() if r.session_id == "task-b"]

    tree = render_tree(records)

    assert tree.splitlines()[0].endswith("(parent task-a not in these records)")


def test_tree_keeps_sessions_with_cyclic_parents() -> None:
    log = AuditLog(MemoryAuditSink())
    a = log.append(session_id="a", parent_session_id="b", action="task.start", actor=ACTOR)
    b = log.append(session_id="b", parent_session_id="a", action="task.start", actor=ACTOR)

    tree = render_tree([a, b])

    assert "session a" in tree
    assert "session b" in tree


def test_tree_separates_top_level_sessions() -> None:
    log = AuditLog(MemoryAuditSink())
    records = append_events(log, 1, session_id="a") + append_events(log, 1, session_id="b")

    tree = render_tree(records)

    assert "\n\nsession b" in tree


def test_tree_of_no_records_is_empty() -> None:
    assert render_tree([]) == ""


def test_tree_escapes_terminal_control_sequences() -> None:
    log = AuditLog(MemoryAuditSink())
    record = log.append(
        session_id="t",
        task_name="\x1b[2J\x1b[31mforged",
        action="tool.call\rok",
        actor=ACTOR,
        attributes={"note": "line\nbreak"},
    )

    tree = render_tree([record])

    assert "\x1b" not in tree
    assert "\r" not in tree
    assert len(tree.splitlines()) == 2
    assert "\\x1b[2J" in tree


# -- hashing ---------------------------------------------------------------------------------


def test_canonical_json_sorts_keys_compactly() -> None:
    assert canonical_json({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'


def test_stable_hash_ignores_key_order() -> None:
    assert stable_hash({"a": 1, "b": {"c": 2, "d": 3}}) == stable_hash(
        {"b": {"d": 3, "c": 2}, "a": 1}
    )


def test_stable_hash_is_sha256_of_canonical_json() -> None:
    value = {"city": "Paris", "days": 3}

    expected = hashlib.sha256(b'{"city":"Paris","days":3}').hexdigest()
    assert stable_hash(value) == expected


def test_stable_hash_ignores_set_order() -> None:
    assert stable_hash({"tags": {"x", "y", "z"}}) == stable_hash({"tags": {"z", "y", "x"}})


def test_stable_hash_converts_common_types() -> None:
    class Point(BaseModel):
        x: int

    @dataclasses.dataclass
    class Pair:
        left: int
        right: int

    value = {
        "model": Point(x=1),
        "pair": Pair(1, 2),
        "data": b"\x00\x01",
        "when": datetime.date(2026, 1, 1),
        "ratio": float("inf"),
        "numbered": {1: "one"},
    }

    assert stable_hash(value) == stable_hash(
        {
            "model": {"x": 1},
            "pair": {"left": 1, "right": 2},
            "data": {"$bytes": "AAE="},
            "when": "2026-01-01",
            "ratio": "inf",
            "numbered": {"1": "one"},
        }
    )


def test_stable_hash_handles_self_reference() -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)

    assert re.fullmatch(r"[0-9a-f]{64}", stable_hash(cycle))


def test_stable_hash_falls_back_to_repr() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "Opaque()"

    assert stable_hash(Opaque()) == stable_hash("Opaque()")


def test_file_lines_are_utf8(log_path: Path) -> None:
    with AuditLog.to_file(log_path) as log:
        log.append(session_id="t", task_name="é", action="task.start", actor=ACTOR)

    assert '"task_name":"é"'.encode() in log_path.read_bytes()


def test_tree_shows_lists_of_scalars() -> None:
    log = AuditLog(MemoryAuditSink())
    record = log.append(
        session_id="s1",
        action="framework.retrieve",
        actor="spiffe://example.org/a",
        attributes={"data_classes": ["confidential", "internal"], "nested": [{"a": 1}]},
    )
    tree = render_tree([record])
    assert "data_classes=confidential,internal" in tree
    assert "nested=" not in tree


def test_trusted_infos_equal_validated_ones() -> None:
    from agentlease.audit import CredentialInfo, DecisionInfo, UsageInfo
    from agentlease.grants import LocalBroker
    from agentlease.messages import Usage
    from agentlease.policy import Decision

    grant = LocalBroker().mint(
        subject="spiffe://example.org/a",
        audience="tool:x",
        scope="call_tool",
        task_id="t",
        data_class="internal",
        lifetime=60,
    )
    credential = CredentialInfo.from_grant(grant)
    assert credential == CredentialInfo(
        mode="grant", jti=grant.jti, kid=grant.key_id, aud=grant.audience, exp=grant.expires_at
    )
    assert (
        credential.model_dump()
        == CredentialInfo.model_validate(credential.model_dump()).model_dump()
    )

    decision = DecisionInfo.from_decision(Decision(allowed=True, policy_ids=("p",), reason="r"))
    assert decision == DecisionInfo(allowed=True, policy_ids=("p",), reason="r")

    usage = UsageInfo.from_usage(Usage(input_tokens=1, output_tokens=2, total_tokens=3))
    assert usage == UsageInfo(input_tokens=1, output_tokens=2, total_tokens=3)
