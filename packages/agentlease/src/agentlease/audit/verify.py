"""Reading and verifying JSONL audit logs.

`verify_log` recomputes every record's hash and checks that each record names the hash of
the record before it, that `seq` counts up from 0 without gaps and that every record belongs
to the same chain. This detects an edited record, a deleted record (except at the end) and
records moved out of order.

NOTE: a hash chain cannot show that records were cut from the end of the log, or that the
whole log was rewritten with fresh hashes. Keep `VerifyReport.last_hash` somewhere the log's
writer cannot change, and compare it on the next verification, to detect both.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pydantic

from agentlease.audit.hashing import canonical_json, sha256_hex
from agentlease.audit.record import GENESIS_HASH, AuditRecord
from agentlease.errors import AuditChainBroken

__all__ = ["VerifyReport", "read_log", "verify_log"]

logger = logging.getLogger(__name__)

_FIX = "Keep this copy as evidence and compare it with a backup or with the exported traces."


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of a successful `verify_log`.

    Attributes:
        records: How many records the log contains.
        sessions: How many distinct audit sessions (tasks) the records belong to.
        chain_id: The chain id shared by every record; empty for an empty log.
        last_hash: The hash of the last record, or the genesis hash for an empty log. Store it
            apart from the log to detect later truncation.
    """

    records: int
    sessions: int
    chain_id: str
    last_hash: str


def verify_log(path: str | os.PathLike[str]) -> VerifyReport:
    """Verify the hash chain of a JSONL audit log.

    Raises:
        AuditChainBroken: A record does not verify; `line` is its 1-based line number.
        OSError: The file cannot be read.
    """
    path_text = os.fspath(path)
    chain_id = ""
    prev_hash = GENESIS_HASH
    expected_seq = 0
    sessions: set[str] = set()

    for line_number, raw in _iter_lines(path_text):
        record = check_line(raw, path=path_text, line=line_number)

        if line_number == 1:
            chain_id = record.chain_id
        elif record.chain_id != chain_id:
            raise _broken(
                path_text,
                line_number,
                f"record has chain_id {record.chain_id!r} but the log's chain is {chain_id!r}, "
                "so records of another log were mixed in",
            )
        if record.prev_hash != prev_hash or record.seq != expected_seq:
            raise _broken(path_text, line_number, _link_problem(record, expected_seq))

        sessions.add(record.session_id)
        prev_hash = record.hash
        expected_seq += 1

    logger.debug("verified audit log %s: %d records", path_text, expected_seq)
    return VerifyReport(
        records=expected_seq,
        sessions=len(sessions),
        chain_id=chain_id,
        last_hash=prev_hash,
    )


def read_log(path: str | os.PathLike[str]) -> list[AuditRecord]:
    """Read every record of a JSONL audit log, without checking the hash chain.

    Call `verify_log` first when the records must be trusted.

    Raises:
        AuditChainBroken: A line is not a valid audit record; `line` is its 1-based number.
        OSError: The file cannot be read.
    """
    path_text = os.fspath(path)
    records: list[AuditRecord] = []
    for line_number, raw in _iter_lines(path_text):
        data = parse_line(
            decode_line(raw, path=path_text, line=line_number), path=path_text, line=line_number
        )
        records.append(validate_record(data, path=path_text, line=line_number))
    return records


def check_line(raw: bytes, *, path: str, line: int) -> AuditRecord:
    """Decode, parse and validate one log line, and check the record's own hash.

    Raises:
        AuditChainBroken: The line is not a valid record, or its hash does not match.
    """
    data = parse_line(decode_line(raw, path=path, line=line), path=path, line=line)
    check_record_hash(data, path=path, line=line)
    return validate_record(data, path=path, line=line)


def decode_line(raw: bytes, *, path: str, line: int) -> str:
    """Decode one log line as strict UTF-8.

    Raises:
        AuditChainBroken: The line is not valid UTF-8.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _broken(path, line, "line is not valid UTF-8") from None


def parse_line(text: str, *, path: str, line: int) -> dict[str, Any]:
    """Parse one log line into a JSON object.

    Raises:
        AuditChainBroken: The line is empty, not JSON, or not a JSON object.
    """
    if not text.strip():
        raise _broken(path, line, "line is empty, so a record was removed or the file was edited")
    try:
        data: object = json.loads(text)
    except ValueError:
        raise _broken(path, line, "line is not valid JSON") from None
    if not isinstance(data, dict):
        raise _broken(path, line, "line is not a JSON object")
    return cast("dict[str, Any]", data)


def check_record_hash(data: dict[str, Any], *, path: str, line: int) -> None:
    """Recompute a parsed record's hash and compare it with its `hash` field.

    Raises:
        AuditChainBroken: The hash is missing or does not match the record's content.
    """
    stored = data.get("hash")
    if not isinstance(stored, str):
        raise _broken(path, line, "record has no hash")
    body = {key: value for key, value in data.items() if key != "hash"}
    try:
        computed = sha256_hex(canonical_json(body))
    except (TypeError, ValueError):
        raise _broken(path, line, "record contains values that canonical JSON rejects") from None
    if computed != stored:
        raise _broken(path, line, "record hash does not match its content, so it was edited")


def validate_record(data: dict[str, Any], *, path: str, line: int) -> AuditRecord:
    """Validate a parsed record against the `AuditRecord` schema.

    Raises:
        AuditChainBroken: A field is missing, unknown or has the wrong type.
    """
    try:
        return AuditRecord.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        location = ".".join(str(part) for part in first["loc"]) or "record"
        raise _broken(
            path, line, f"record does not match the audit schema: {location}: {first['msg']}"
        ) from None


def count_lines(path: str) -> int:
    """Return the number of lines in a file, counting a last line without a newline."""
    count = 0
    last = b"\n"
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count if last == b"\n" else count + 1


def _iter_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """Yield the 1-based number and bytes of each line."""
    with Path(path).open("rb") as file:
        yield from enumerate(file, start=1)


def _link_problem(record: AuditRecord, expected_seq: int) -> str:
    if expected_seq == 0 and record.seq == 0:
        return "the first record's prev_hash is not the genesis hash, so the chain was altered"
    if expected_seq == 0:
        return (
            f"the first record has seq {record.seq} and does not start the chain, "
            "so records before it were deleted"
        )
    if record.seq > expected_seq:
        return (
            f"record has seq {record.seq} where seq {expected_seq} was expected, "
            "so a record before it was deleted or moved"
        )
    if record.seq < expected_seq:
        return (
            f"record has seq {record.seq} where seq {expected_seq} was expected, "
            "so records were reordered or copied"
        )
    return (
        "record's prev_hash does not match the hash of the record before it, "
        "so that record was replaced or edited and its hash recomputed"
    )


def _broken(path: str, line: int, problem: str) -> AuditChainBroken:
    return AuditChainBroken(f"{path} line {line}: {problem}. {_FIX}", path=path, line=line)
