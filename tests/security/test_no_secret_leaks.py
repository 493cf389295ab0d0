"""Canary tests: grant tokens and API keys never reach logs, spans, the audit log or reprs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan

import agentlease
from agentlease.audit import AuditLog, JsonlAuditSink
from agentlease.messages import ChatRequest, Message
from agentlease.testing import ModelServer, Reply

CANARY_KEY = "sk-canary-7f3e9b1c2d4a"
HELLO = ChatRequest(messages=[Message(role="user", content="hello")])


def span_text(spans: list[ReadableSpan]) -> str:
    parts: list[str] = []
    for span in spans:
        parts.append(span.name)
        parts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        parts.extend(str(event.attributes) for event in span.events)
        if span.status.description:
            parts.append(span.status.description)
    return "\n".join(parts)


def test_grant_tokens_stay_out_of_every_channel(
    runtime: agentlease.Runtime,
    model_server: ModelServer,
    audit_path: Path,
    spans: Callable[[], list[ReadableSpan]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    model_server.script(Reply.error(503, "overloaded"), prefix="/fast")
    client = agentlease.ModelClient("default")
    guard = agentlease.ToolGuard("crm", data_class="confidential")

    with agentlease.task("canary") as opened:
        client.chat(HELLO)
        guard.call(lambda: "record")
        client.chat(HELLO)
        tokens = [g.token for g in opened.grants]
        reprs = [repr(opened), repr(runtime), repr(client), repr(guard)]
        reprs += [repr(g) for g in opened.grants] + [str(g) for g in opened.grants]

    assert len(tokens) >= 2
    channels = {
        "audit log": audit_path.read_text(encoding="utf-8"),
        "spans": span_text(spans()),
        "logs": caplog.text,
        "reprs": "\n".join(reprs),
    }
    for name, text in channels.items():
        for token in tokens:
            assert token not in text, f"a grant token leaked into the {name}"
            signature = token.rsplit(".", 1)[1]
            assert signature not in text, f"a grant signature leaked into the {name}"


def test_api_key_stays_out_of_every_channel(
    model_server: ModelServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    model_server.reset()
    monkeypatch.setenv("AGENTLEASE_CANARY_KEY", CANARY_KEY)
    route = agentlease.Route(
        name="vendor",
        base_url=model_server.url,
        model="vendor-model",
        credential="api_key",
        api_key_env="AGENTLEASE_CANARY_KEY",
    )
    path = tmp_path / "audit.jsonl"
    runtime = agentlease.Runtime(routes=[route], audit=AuditLog(JsonlAuditSink(path)))
    client = agentlease.ModelClient("vendor", runtime=runtime)
    messages: list[str] = []
    try:
        with agentlease.task("canary", runtime=runtime):
            client.chat(HELLO)
            model_server.script(Reply.error(401, "invalid key"))
            try:
                client.chat(HELLO)
            except agentlease.ProviderError as exc:
                messages.append(str(exc))
                messages.append(repr(exc))
    finally:
        runtime.close()

    assert model_server.requests[0].headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert messages, "the second call should have failed with the scripted 401"
    assert CANARY_KEY not in path.read_text(encoding="utf-8")
    assert CANARY_KEY not in caplog.text
    assert CANARY_KEY not in "\n".join(messages)
    assert CANARY_KEY not in repr(route) + repr(runtime) + repr(client)
