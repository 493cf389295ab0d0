"""A text tree of audit sessions for security review.

Each session (task) is a node headed by its id, task name, actor and user. Its records
follow in `seq` order, one line each, and sub-agent sessions nest under their parent at the
place where they started. Denials, errors and static API keys are written in capitals so
they stand out. Text from the log is escaped before printing, so a crafted record cannot
inject terminal control sequences into the reviewer's screen.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from agentlease.audit.record import AuditRecord
from agentlease.errors import ConfigurationError

__all__ = ["escape_control_characters", "render_tree"]

_JTI_PREFIX_CHARS = 8
_MAX_ATTRIBUTES = 6
_MAX_ATTRIBUTE_CHARS = 60


@dataclass(slots=True)
class _Session:
    session_id: str
    first: AuditRecord
    records: list[AuditRecord] = field(default_factory=lambda: [])
    children: list[_Session] = field(default_factory=lambda: [])
    parent_missing: bool = False


def render_tree(records: Sequence[AuditRecord], *, session_id: str | None = None) -> str:
    """Render audit records as one box-drawing tree per top-level session.

    A session nests under the session named by its first record's `parent_session_id`. A
    session whose parent is not among the records, or whose parent links form a cycle, is
    drawn at the top level. Each record line shows `seq`, time, action, resource, the policy
    decision (allow or DENY, policy ids and reason), the credential (mode, `jti` prefix, key
    id and expiry), token usage, scalar attributes and the outcome with any error.

    Args:
        records: Records of one log, in any order.
        session_id: Draw only this session and the sessions nested under it.

    Returns:
        The tree, with trees of several top-level sessions separated by a blank line; an
        empty string when there are no records.

    Raises:
        ConfigurationError: `session_id` is not among the records.
    """
    sessions = _group_sessions(records)
    roots = _link_sessions(sessions)
    if session_id is not None:
        if session_id not in sessions:
            raise ConfigurationError(
                f"Session {session_id!r} is not in the audit records; list the sessions with "
                "`agentlease audit list PATH`."
            )
        roots = [sessions[session_id]]
    return "\n\n".join("\n".join(_render_session(root)) for root in roots)


def _group_sessions(records: Sequence[AuditRecord]) -> dict[str, _Session]:
    sessions: dict[str, _Session] = {}
    for record in sorted(records, key=lambda record: record.seq):
        session = sessions.get(record.session_id)
        if session is None:
            session = sessions[record.session_id] = _Session(record.session_id, record)
        session.records.append(record)
    return sessions


def _link_sessions(sessions: dict[str, _Session]) -> list[_Session]:
    """Attach each session to its parent and return the top-level sessions."""
    roots: list[_Session] = []
    for session in sessions.values():
        parent_id = session.first.parent_session_id
        if parent_id is None or _parent_forms_cycle(session, sessions):
            roots.append(session)
        elif parent_id not in sessions:
            session.parent_missing = True
            roots.append(session)
        else:
            sessions[parent_id].children.append(session)
    return roots


def _parent_forms_cycle(session: _Session, sessions: dict[str, _Session]) -> bool:
    seen = {session.session_id}
    node = session.first.parent_session_id
    while node is not None and node in sessions:
        if node in seen:
            return True
        seen.add(node)
        node = sessions[node].first.parent_session_id
    return False


def _render_session(root: _Session) -> list[str]:
    """Draw a session and everything nested under it.

    The walk uses an explicit stack, so a log with deeply nested sessions cannot exhaust
    Python's recursion limit.
    """
    lines = [_session_header(root)]
    stack: list[tuple[list[AuditRecord | _Session], str]] = [(_session_items(root), "")]
    while stack:
        items, prefix = stack[-1]
        if not items:
            stack.pop()
            continue
        item = items.pop(0)
        is_last = not items
        branch = "└── " if is_last else "├── "
        if isinstance(item, AuditRecord):
            lines.append(prefix + branch + _record_line(item))
        else:
            lines.append(prefix + branch + _session_header(item))
            stack.append((_session_items(item), prefix + ("    " if is_last else "│   ")))
    return lines


def _session_items(session: _Session) -> list[AuditRecord | _Session]:
    """Return the session's records and child sessions, ordered by their first `seq`."""
    items: list[AuditRecord | _Session] = [*session.records, *session.children]
    return sorted(
        items, key=lambda item: item.seq if isinstance(item, AuditRecord) else item.first.seq
    )


def _session_header(session: _Session) -> str:
    first = session.first
    parts = [f"session {escape_control_characters(session.session_id)}"]
    if first.task_name:
        parts.append(f"task={escape_control_characters(first.task_name)}")
    parts.append(f"actor={escape_control_characters(first.actor)}")
    if first.on_behalf_of:
        parts.append(f"on_behalf_of={escape_control_characters(first.on_behalf_of)}")
    if first.trace_id:
        parts.append(f"trace={first.trace_id}")
    if session.parent_missing and first.parent_session_id is not None:
        parts.append(
            f"(parent {escape_control_characters(first.parent_session_id)} not in these records)"
        )
    return "  ".join(parts)


def _record_line(record: AuditRecord) -> str:
    parts = [f"#{record.seq}", record.time, escape_control_characters(record.action)]
    if record.resource:
        parts.append(escape_control_characters(record.resource))
    if record.decision is not None:
        decision = record.decision
        text = "allow" if decision.allowed else "DENY"
        if decision.policy_ids:
            policy_ids = ", ".join(escape_control_characters(p) for p in decision.policy_ids)
            text += f" [{policy_ids}]"
        if decision.reason:
            text += f' "{escape_control_characters(decision.reason)}"'
        parts.append(text)
    if record.credential is not None:
        parts.append(_credential_text(record))
    if record.usage is not None:
        parts.append(f"tokens in={record.usage.input_tokens} out={record.usage.output_tokens}")
    attributes = _attributes_text(record.attributes)
    if attributes:
        parts.append(attributes)
    parts.append(_outcome_text(record))
    return "  ".join(parts)


def _credential_text(record: AuditRecord) -> str:
    credential = record.credential
    assert credential is not None
    if credential.mode == "api_key":
        text = "credential=API_KEY (static key)"
    elif credential.mode == "unmediated":
        text = "credential=UNMEDIATED (the framework's own credential)"
    else:
        text = f"credential={credential.mode}"
    if credential.jti:
        text += f" jti={escape_control_characters(credential.jti[:_JTI_PREFIX_CHARS])}…"
    if credential.kid:
        text += f" kid={escape_control_characters(credential.kid)}"
    if credential.exp is not None:
        text += f" exp={_epoch_text(credential.exp)}"
    return text


def _outcome_text(record: AuditRecord) -> str:
    if record.outcome == "ok":
        return "ok"
    text = record.outcome.upper()
    if record.error is not None:
        text += f" {escape_control_characters(record.error.type)}"
        if record.error.message:
            text += f": {escape_control_characters(record.error.message)}"
    return text


def _attributes_text(attributes: dict[str, Any]) -> str:
    """Show scalar attributes and lists of scalars as key=value; nested values stay in the log."""
    rendered: list[str] = []
    for key in sorted(attributes):
        value = attributes[key]
        if isinstance(value, list):
            items = cast("list[Any]", value)
            if not items or any(isinstance(item, (dict, list)) for item in items):
                continue
            value = ",".join(str(item) for item in items)
        if value is None or isinstance(value, dict):
            continue
        if len(rendered) == _MAX_ATTRIBUTES:
            rendered.append("…")
            break
        text = escape_control_characters(str(value))
        if len(text) > _MAX_ATTRIBUTE_CHARS:
            text = text[:_MAX_ATTRIBUTE_CHARS] + "…"
        rendered.append(f"{escape_control_characters(key)}={text}")
    return " ".join(rendered)


def _epoch_text(seconds: int) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def escape_control_characters(text: str) -> str:
    """Escape control and other non-printable characters, such as ESC and line breaks."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
