"""HTML views of tasks, for notebooks."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentlease.task import Task

__all__ = ["render_task_html"]


def render_task_html(task: Task) -> str:
    """Render a task's identity, data class and grants as an HTML table (never the tokens)."""
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(g.audience)}</td><td>{html.escape(g.scope)}</td>"
        f"<td><code>{html.escape(g.jti[:12])}</code></td><td>{g.expires_at}</td>"
        f"<td>{'revoked' if g in task.revoked else 'active'}</td>"
        "</tr>"
        for g in task.grants
    )
    state = "ended" if task.closed else "open"
    return (
        f"<div><strong>agentlease task</strong> {html.escape(task.name)} "
        f"<code>{html.escape(task.id)}</code> ({state})<br>"
        f"identity: <code>{html.escape(task.identity.id)}</code> "
        f"(verified: {task.identity.verified}), data class: {html.escape(task.data_class)}"
        "<table><thead><tr><th>audience</th><th>scope</th><th>jti</th><th>expires</th>"
        f"<th>state</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
