"""The ``agentlease audit`` commands: verify a log's hash chain, list its sessions, show a tree.

`add_audit_commands` registers the commands on the ``agentlease`` parser and
`run_audit_command` runs the one that was parsed:

```
agentlease audit verify PATH            exit 0 with a summary, 1 naming the first bad line
agentlease audit list PATH              one line per session
agentlease audit show PATH [--session ID]
```

Exit status 2 means the file could not be read. `list` and `show` also exit 1 when the chain
does not verify, after printing a warning and whatever records could be read.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from agentlease.audit.record import AuditRecord
from agentlease.audit.tree import escape_control_characters, render_tree
from agentlease.audit.verify import read_log, verify_log
from agentlease.errors import AuditChainBroken

if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]  # pyright: ignore[reportPrivateUsage]

__all__ = ["add_audit_commands", "run_audit_command"]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_BROKEN = 1
EXIT_UNREADABLE = 2


def add_audit_commands(subparsers: _SubParsers) -> argparse.ArgumentParser:
    """Register ``audit`` and its ``verify``, ``list`` and ``show`` commands.

    Args:
        subparsers: The object `ArgumentParser.add_subparsers` returned for the top-level
            commands.

    Returns:
        The ``audit`` parser. Parsed arguments carry `audit_command` (the command name) and
        `func` (`run_audit_command`).
    """
    audit = subparsers.add_parser(
        "audit",
        help="Verify, list and show audit logs.",
        description="Review a JSONL audit log written by agentlease.",
    )
    audit.set_defaults(func=run_audit_command, audit_parser=audit)
    commands = audit.add_subparsers(dest="audit_command", metavar="COMMAND")

    verify = commands.add_parser(
        "verify",
        help="Check the log's hash chain.",
        description=(
            "Recompute every record's hash and check the chain links, to detect edited, "
            "deleted and reordered records. Records cut from the end are detected only by "
            "comparing the printed last hash with one saved earlier."
        ),
    )
    verify.add_argument("path", metavar="PATH", help="The JSONL audit log.")

    listing = commands.add_parser("list", help="List the sessions, one per line.")
    listing.add_argument("path", metavar="PATH", help="The JSONL audit log.")

    show = commands.add_parser("show", help="Show the sessions as a tree.")
    show.add_argument("path", metavar="PATH", help="The JSONL audit log.")
    show.add_argument(
        "--session",
        metavar="ID",
        help="Show only this session and its sub-agents; a unique prefix of the id is enough.",
    )
    return audit


def run_audit_command(args: argparse.Namespace) -> int:
    """Run the parsed ``audit`` command and return its exit status."""
    command: str | None = getattr(args, "audit_command", None)
    if command == "verify":
        return _verify(args.path)
    if command == "list":
        return _list(args.path)
    if command == "show":
        return _show(args.path, args.session)
    parser: argparse.ArgumentParser | None = getattr(args, "audit_parser", None)
    if parser is not None:
        parser.print_usage(sys.stderr)
    sys.stderr.write("agentlease audit: choose a command: verify, list or show.\n")
    return EXIT_UNREADABLE


def _verify(path: str) -> int:
    try:
        report = verify_log(path)
    except AuditChainBroken as exc:
        logger.info("audit log %s failed verification at line %d", path, exc.line)
        sys.stderr.write(f"BROKEN {exc}\n")
        return EXIT_BROKEN
    except OSError as exc:
        return _unreadable(path, exc)
    sys.stdout.write(
        f"OK {path}: {report.records} records in {report.sessions} sessions, "
        f"chain {report.chain_id or '-'}, last hash {report.last_hash}\n"
    )
    return EXIT_OK


def _list(path: str) -> int:
    loaded = _load(path)
    if isinstance(loaded, int):
        return loaded
    records, status = loaded
    for line in _session_lines(records):
        sys.stdout.write(line + "\n")
    return status


def _show(path: str, session: str | None) -> int:
    loaded = _load(path)
    if isinstance(loaded, int):
        return loaded
    records, status = loaded
    session_id = None
    if session is not None:
        session_id = _resolve_session(records, session)
        if session_id is None:
            sys.stderr.write(
                f"agentlease audit: session {session!r} matches no single session in {path}; "
                f"list the sessions with `agentlease audit list {path}`.\n"
            )
            return EXIT_UNREADABLE
    tree = render_tree(records, session_id=session_id)
    sys.stdout.write((tree or f"{path} contains no records.") + "\n")
    return status


def _load(path: str) -> tuple[list[AuditRecord], int] | int:
    """Verify and read a log; return its records and exit status, or an exit status alone."""
    status = EXIT_OK
    try:
        verify_log(path)
    except AuditChainBroken as exc:
        logger.info("audit log %s failed verification at line %d", path, exc.line)
        sys.stderr.write(f"WARNING the records below may have been altered: {exc}\n")
        status = EXIT_BROKEN
    except OSError as exc:
        return _unreadable(path, exc)
    try:
        records = read_log(path)
    except AuditChainBroken as exc:
        sys.stderr.write(f"agentlease audit: cannot read the records: {exc}\n")
        return EXIT_BROKEN
    except OSError as exc:
        return _unreadable(path, exc)
    return records, status


def _session_lines(records: list[AuditRecord]) -> list[str]:
    """Describe each session on one line, in the order the sessions started."""
    lines: list[str] = []
    by_session: dict[str, list[AuditRecord]] = {}
    for record in sorted(records, key=lambda record: record.seq):
        by_session.setdefault(record.session_id, []).append(record)
    for session_id, session_records in by_session.items():
        first = session_records[0]
        denied = sum(record.outcome == "denied" for record in session_records)
        errors = sum(record.outcome == "error" for record in session_records)
        columns = [
            session_id,
            first.time,
            f"records={len(session_records)}",
            f"denied={denied}",
            f"errors={errors}",
            f"parent={first.parent_session_id or '-'}",
            f"task={first.task_name or '-'}",
        ]
        lines.append("  ".join(escape_control_characters(column) for column in columns))
    return lines


def _resolve_session(records: list[AuditRecord], requested: str) -> str | None:
    """Return the session id equal to `requested`, else the only one starting with it."""
    session_ids = {record.session_id for record in records}
    if requested in session_ids:
        return requested
    matches = [session_id for session_id in session_ids if session_id.startswith(requested)]
    return matches[0] if len(matches) == 1 else None


def _unreadable(path: str, exc: OSError) -> int:
    logger.info("cannot read audit log %s: %s", path, exc)
    reason = exc.strerror or type(exc).__name__
    sys.stderr.write(f"agentlease audit: cannot read {path}: {reason}; check the path.\n")
    return EXIT_UNREADABLE
