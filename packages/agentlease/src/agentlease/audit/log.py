"""The audit log: assigns each record its place in the hash chain and writes it to sinks.

`AuditLog.append` is on the path of every model and tool call, so it avoids pydantic
validation and `json.dumps` of the whole record. Nested values are validated once when they
are built, and the record is encoded by a fixed-shape encoder (see `_encode`).
"""

from __future__ import annotations

import enum
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, cast, runtime_checkable

import pydantic
from opentelemetry import trace

from agentlease.audit._encode import encode_attributes, encode_record
from agentlease.audit.hashing import canonical_json, sha256_hex
from agentlease.audit.record import (
    GENESIS_HASH,
    SCHEMA_VERSION,
    AuditRecord,
    CredentialInfo,
    DecisionInfo,
    DecisionLike,
    ErrorInfo,
    UsageInfo,
    UsageLike,
    construct_trusted,
)
from agentlease.audit.tracing import span_ids
from agentlease.audit.verify import check_line, count_lines
from agentlease.errors import AuditChainBroken, AuditError, ConfigurationError

__all__ = ["AuditLog", "AuditSink", "FsyncMode", "JsonlAuditSink", "MemoryAuditSink"]

logger = logging.getLogger(__name__)

FsyncMode = Literal["always", "flush", "never"]

_OUTCOMES = frozenset({"ok", "denied", "error", "cancelled"})
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_TAIL_BLOCK = 64 * 1024


class _Unset(enum.Enum):
    UNSET = enum.auto()


_UNSET = _Unset.UNSET


@runtime_checkable
class AuditSink(Protocol):
    """A destination for audit records.

    `AuditLog` calls `write` with records in chain order, one at a time.
    """

    def write(self, record: AuditRecord) -> None:
        """Store one record."""
        ...

    def flush(self) -> None:
        """Make every record written so far durable, as far as the sink can."""
        ...

    def close(self) -> None:
        """Flush and release the sink's resources."""
        ...


class MemoryAuditSink:
    """A sink that keeps records in a list, for tests and notebooks.

    Attributes:
        records: Every record written, in chain order.
    """

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def write(self, record: AuditRecord) -> None:
        """Append the record to `records`."""
        self.records.append(record)

    def flush(self) -> None:
        """Do nothing: the records are already in memory."""

    def close(self) -> None:
        """Do nothing: the records stay readable after close."""


class JsonlAuditSink:
    """A sink that appends one canonical JSON record per line to a file.

    The file is opened in append mode and created with permissions 0600 (with its parent
    directories) when missing. Each record goes to the operating system in one `write` call
    before `write` returns, so a crash of the process loses no record. `fsync` sets when the
    data is also forced to disk: ``"always"`` after every record, ``"flush"`` on `flush` and
    `close`, ``"never"`` not at all.

    Opening an existing file reads its last record, which `AuditLog` continues the chain from.

    NOTE: one process at a time may append to a file. Records of two writers interleave
    and break the chain, because each writer links to its own previous record.

    Raises:
        ConfigurationError: `fsync` is not one of the three modes.
        AuditChainBroken: The file's last line is not a valid record.
        OSError: The file cannot be opened.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: FsyncMode = "flush") -> None:
        if fsync not in ("always", "flush", "never"):
            raise ConfigurationError(
                f"Invalid fsync mode {fsync!r}; use 'always', 'flush' or 'never'."
            )
        self.path = Path(path)
        self.fsync: FsyncMode = fsync
        self._lock = threading.Lock()
        self._closed = False

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.last_record, self._needs_newline = _read_last_record(self.path)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        self._fd = os.open(self.path, flags, 0o600)

    def write(self, record: AuditRecord) -> None:
        """Append a record as one canonical JSON line."""
        self.write_line(canonical_json(record.model_dump(mode="json")) + "\n")

    def write_line(self, line: str) -> None:
        """Append a line that is already canonical JSON and ends with a newline.

        `AuditLog` calls this with the text it hashed, so the record is encoded only once.

        Raises:
            AuditError: The sink is closed.
            OSError: The write failed.
        """
        data = line.encode("utf-8")
        with self._lock:
            if self._closed:
                raise AuditError(
                    f"The audit file {self.path} is closed; open a new JsonlAuditSink to append."
                )
            if self._needs_newline:
                data = b"\n" + data
                self._needs_newline = False
            _write_all(self._fd, data)
            if self.fsync == "always":
                os.fsync(self._fd)

    def flush(self) -> None:
        """Force written records to disk, unless `fsync` is ``"never"``.

        The fsync runs on a duplicate of the file descriptor outside the sink's lock, so
        other threads keep appending while the disk catches up.
        """
        with self._lock:
            if self._closed or self.fsync == "never":
                return
            fd = os.dup(self._fd)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Flush and close the file. Closing twice does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self.fsync != "never":
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)

    def __repr__(self) -> str:
        return f"JsonlAuditSink({str(self.path)!r}, fsync={self.fsync!r})"


class AuditLog:
    """A thread-safe, hash-chained audit log that fans records out to its sinks.

    Each `append` assigns the record its chain id, sequence number, time, `prev_hash` and
    `hash`, then writes it to every sink in order. A `JsonlAuditSink` over an existing file
    makes the log continue that file's chain (next `seq`, `prev_hash` = the last record's
    hash, the same chain id) instead of starting a new one.

    Example:
        ```python
        sink = MemoryAuditSink()
        log = AuditLog(sink)
        log.append(session_id="task-1", action="task.start", actor="spiffe://example.org/a")
        assert sink.records[0].seq == 0
        ```

    Args:
        sinks: One sink or several.
        chain_id: The id of a new chain; a random UUID when omitted.
        clock: Returns the current time in seconds since the Unix epoch.

    Raises:
        ConfigurationError: No sink is given, `chain_id` differs from the chain of an existing
            file, or two files end in different chains.
    """

    def __init__(
        self,
        sinks: AuditSink | Sequence[AuditSink],
        *,
        chain_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(sinks, Sequence):
            self._sinks: tuple[AuditSink, ...] = tuple(sinks)
        else:
            self._sinks = (sinks,)
        if not self._sinks:
            raise ConfigurationError(
                "AuditLog needs at least one sink; pass MemoryAuditSink() to keep records "
                "in memory."
            )
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        self._time_second = -1
        self._time_prefix = ""

        last = _shared_last_record(self._sinks)
        if last is None:
            self._chain_id = chain_id or uuid.uuid4().hex
            self._next_seq = 0
            self._prev_hash = GENESIS_HASH
        else:
            if chain_id is not None and chain_id != last.chain_id:
                raise ConfigurationError(
                    f"chain_id {chain_id!r} differs from the chain {last.chain_id!r} of the "
                    "existing audit file; omit chain_id to continue that chain, or use a new file."
                )
            self._chain_id = last.chain_id
            self._next_seq = last.seq + 1
            self._prev_hash = last.hash

    @classmethod
    def to_file(
        cls,
        path: str | os.PathLike[str],
        *,
        fsync: FsyncMode = "flush",
        chain_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> AuditLog:
        """Open a log that appends to a JSONL file, continuing the chain the file contains."""
        sink = JsonlAuditSink(path, fsync=fsync)
        try:
            return cls(sink, chain_id=chain_id, clock=clock)
        except BaseException:
            sink.close()
            raise

    @property
    def chain_id(self) -> str:
        """The id of the hash chain this log appends to."""
        return self._chain_id

    @property
    def path(self) -> Path | None:
        """The path of the first JSONL file sink, if there is one."""
        for sink in self._sinks:
            if isinstance(sink, JsonlAuditSink):
                return sink.path
        return None

    @property
    def sinks(self) -> tuple[AuditSink, ...]:
        """The sinks records are written to, in order."""
        return self._sinks

    def append(
        self,
        *,
        session_id: str,
        action: str,
        actor: str,
        outcome: str = "ok",
        parent_session_id: str | None = None,
        task_name: str | None = None,
        trace_id: str | _Unset | None = _UNSET,
        span_id: str | _Unset | None = _UNSET,
        on_behalf_of: str | None = None,
        resource: str | None = None,
        decision: DecisionInfo | DecisionLike | Mapping[str, Any] | None = None,
        credential: CredentialInfo | Mapping[str, Any] | None = None,
        error: ErrorInfo | BaseException | Mapping[str, Any] | None = None,
        usage: UsageInfo | UsageLike | Mapping[str, Any] | None = None,
        args_hash: str | None = None,
        result_hash: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Append one record to the chain and write it to every sink.

        When neither `trace_id` nor `span_id` is passed, the ids of the current OpenTelemetry
        span are recorded, if there is one. Pass None to record no trace.

        `decision`, `usage` and `error` also accept a policy decision, a usage object and an
        exception, converted by the `from_*` constructors of `DecisionInfo`, `UsageInfo` and
        `ErrorInfo`, or mappings of their fields, which are validated.

        `attributes` are stored as JSON, so tuples come back as lists. Values that JSON cannot
        represent, NaN and infinities included, are stored as their `repr`.

        Returns:
            The record as written.

        Raises:
            ConfigurationError: `outcome`, a trace or span id, or a nested value is invalid.
            AuditError: The log is closed, or a sink failed to write. A sink failure still
                uses up the record's place in the chain, so `verify_log` reports the gap.
        """
        if outcome not in _OUTCOMES:
            raise ConfigurationError(
                f"Invalid audit outcome {outcome!r}; use 'ok', 'denied', 'error' or 'cancelled'."
            )
        if isinstance(trace_id, _Unset) and isinstance(span_id, _Unset):
            trace_id, span_id = _current_span_ids()
        else:
            trace_id = None if isinstance(trace_id, _Unset) else trace_id
            span_id = None if isinstance(span_id, _Unset) else span_id
            _check_id("trace_id", trace_id, _TRACE_ID)
            _check_id("span_id", span_id, _SPAN_ID)
        fields: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "chain_id": self._chain_id,
            "seq": 0,
            "time": "",
            "session_id": session_id,
            "parent_session_id": parent_session_id,
            "task_name": task_name,
            "trace_id": trace_id,
            "span_id": span_id,
            "actor": actor,
            "on_behalf_of": on_behalf_of,
            "action": action,
            "resource": resource,
            "decision": decision if type(decision) is DecisionInfo else _to_decision(decision),
            "credential": (
                credential
                if type(credential) is CredentialInfo
                else _to_model(CredentialInfo, "credential", credential)
            ),
            "outcome": outcome,
            "error": None if error is None else _to_error(error),
            "usage": usage if type(usage) is UsageInfo else _to_usage(usage),
            "args_hash": args_hash,
            "result_hash": result_hash,
            "attributes": dict(attributes) if attributes else {},
            "prev_hash": GENESIS_HASH,
            "hash": GENESIS_HASH,
        }
        try:
            attributes_json = encode_attributes(fields["attributes"])
        except (TypeError, ValueError):
            fields["attributes"] = _json_safe(fields["attributes"])
            attributes_json = canonical_json(fields["attributes"])

        with self._lock:
            if self._closed:
                raise AuditError(
                    "The audit log is closed; create a new AuditLog to keep recording."
                )
            fields["seq"] = self._next_seq
            fields["time"] = self._format_time(self._clock())
            fields["prev_hash"] = self._prev_hash
            line, record_hash = _encode_fields(fields, attributes_json)
            fields["hash"] = record_hash
            record = _construct_record(fields)
            self._next_seq += 1
            self._prev_hash = record_hash
            self._write(record, line)
        return record

    def flush(self) -> None:
        """Flush every sink; sinks lock themselves, so appends go on meanwhile."""
        for sink in self._sinks:
            sink.flush()

    def close(self) -> None:
        """Flush and close every sink. Closing twice does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for sink in self._sinks:
                sink.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuditLog(chain_id={self._chain_id!r}, next_seq={self._next_seq}, path={self.path})"

    def _write(self, record: AuditRecord, line: str) -> None:
        failures: list[tuple[AuditSink, Exception]] = []
        for sink in self._sinks:
            try:
                if isinstance(sink, JsonlAuditSink):
                    sink.write_line(line)
                else:
                    sink.write(record)
            except Exception as exc:  # every sink gets the record even when one fails
                failures.append((sink, exc))
        if not failures:
            return
        for sink, exc in failures:
            logger.error(
                "audit sink %r failed to write record seq %d of session %s: %s",
                sink,
                record.seq,
                record.session_id,
                exc,
            )
        sink, exc = failures[0]
        raise AuditError(
            f"Audit sink {sink!r} failed to write record seq {record.seq}: {exc}; "
            "check the disk and permissions, then run `agentlease audit verify` on the file."
        ) from exc

    def _format_time(self, now: float) -> str:
        second = math.floor(now)
        if second != self._time_second:
            self._time_second = second
            self._time_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        microseconds = min(int((now - second) * 1_000_000), 999_999)
        return f"{self._time_prefix}.{microseconds:06d}Z"


def _encode_fields(fields: dict[str, Any], attributes_json: str) -> tuple[str, str]:
    """Encode and hash a record, and return the line to store and the record's hash."""
    try:
        return _encode_and_hash(fields, attributes_json)
    except UnicodeEncodeError:
        # A string with a lone surrogate cannot be stored as UTF-8: store it escaped instead.
        for key, value in fields.items():
            if isinstance(value, str):
                fields[key] = _utf8_safe(value)
        fields["attributes"] = _json_safe(fields["attributes"])
        for key in ("decision", "credential", "error"):
            nested: pydantic.BaseModel | None = fields[key]
            if nested is not None:
                fields[key] = type(nested).model_validate(_json_safe(nested.model_dump()))
        return _encode_and_hash(fields, canonical_json(fields["attributes"]))


def _encode_and_hash(fields: dict[str, Any], attributes_json: str) -> tuple[str, str]:
    head, tail = encode_record(fields, attributes_json)
    record_hash = sha256_hex(f"{head},{tail}")
    return f'{head},"hash":"{record_hash}",{tail}\n', record_hash


def _construct_record(fields: dict[str, Any]) -> AuditRecord:
    """Build a record from values that are already valid, without pydantic validation."""
    return construct_trusted(AuditRecord, **fields)


def _current_span_ids() -> tuple[str | None, str | None]:
    return span_ids(trace.get_current_span())


def _check_id(name: str, value: str | None, pattern: re.Pattern[str]) -> None:
    if value is not None and pattern.fullmatch(value) is None:
        raise ConfigurationError(
            f"Invalid {name} {value!r}; use the lowercase hex form OpenTelemetry prints."
        )


def _to_model(model: type[pydantic.BaseModel], name: str, value: Any) -> Any:
    if value is None or isinstance(value, model):
        return value
    if isinstance(value, Mapping):
        try:
            return model.model_validate(value)
        except pydantic.ValidationError as exc:
            # Summarise without the input values, which could contain a secret passed by mistake.
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                for error in exc.errors(include_input=False)
            )
            raise ConfigurationError(
                f"Invalid audit {name} ({problems}); pass the fields {model.__name__} declares."
            ) from None
    raise ConfigurationError(
        f"Invalid audit {name} of type {type(value).__name__}; "
        f"pass a {model.__name__} or a mapping of its fields."
    )


def _to_decision(value: Any) -> DecisionInfo | None:
    if value is None or isinstance(value, (DecisionInfo, Mapping)):
        return cast("DecisionInfo | None", _to_model(DecisionInfo, "decision", value))
    return DecisionInfo.from_decision(value)


def _to_usage(value: Any) -> UsageInfo | None:
    if value is None or isinstance(value, (UsageInfo, Mapping)):
        return cast("UsageInfo | None", _to_model(UsageInfo, "usage", value))
    return UsageInfo.from_usage(value)


def _to_error(value: Any) -> ErrorInfo | None:
    if isinstance(value, BaseException):
        return ErrorInfo.from_exception(value)
    return cast("ErrorInfo | None", _to_model(ErrorInfo, "error", value))


def _utf8_safe(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _json_safe(value: Any) -> Any:
    """Convert a value to JSON that encodes as UTF-8: `repr` for what JSON cannot represent."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return _utf8_safe(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        items = cast("Mapping[Any, Any]", value).items()
        return {_utf8_safe(str(key)): _json_safe(item) for key, item in items}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in cast("Sequence[Any]", value)]
    return _utf8_safe(repr(value))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _shared_last_record(sinks: Sequence[AuditSink]) -> AuditRecord | None:
    """Return the last record of the sinks' files, which must all end in the same record."""
    files = [sink for sink in sinks if isinstance(sink, JsonlAuditSink)]
    if not files:
        return None
    last = files[0].last_record
    for other in files[1:]:
        other_last = other.last_record
        same = (last is None and other_last is None) or (
            last is not None and other_last is not None and last.hash == other_last.hash
        )
        if not same:
            raise ConfigurationError(
                f"The audit files {files[0].path} and {other.path} end in different records; "
                "give each AuditLog files of one chain, or new files."
            )
    return last


def _read_last_record(path: Path) -> tuple[AuditRecord | None, bool]:
    """Read and check the last record of a log file.

    Returns the record (None for a missing or empty file) and whether the file lacks a final
    newline, which the next write must add first. Only the last record's own hash is checked:
    `verify_log` checks the whole chain.

    Raises:
        AuditChainBroken: The last line is not a valid record whose hash matches its content.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None, False
    if size == 0:
        return None, False

    with path.open("rb") as file:
        file.seek(size - 1)
        needs_newline = file.read(1) != b"\n"
        # Read backwards from the end, final newline excluded, until the line before it ends.
        start = size if needs_newline else size - 1
        last_line = b""
        while start > 0:
            step = min(_TAIL_BLOCK, start)
            start -= step
            file.seek(start)
            last_line = file.read(step) + last_line
            newline = last_line.rfind(b"\n")
            if newline >= 0:
                last_line = last_line[newline + 1 :]
                break

    path_text = str(path)
    try:
        return check_line(last_line, path=path_text, line=0), needs_newline
    except AuditChainBroken:
        # Only a broken file gets here: count its lines to name the bad one, then raise again.
        return check_line(last_line, path=path_text, line=count_lines(path_text)), needs_newline
