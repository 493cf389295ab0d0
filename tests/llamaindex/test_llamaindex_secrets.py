"""No credential leaks out of SecureLLM: serialization, pickles and instrumentation payloads.

The canaries are real secrets of the run: the grant tokens the model server received as
bearer credentials, and the broker's private signing key.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.tools import FunctionTool

import agentlease
from agentlease.audit import AuditLog, MemoryAuditSink
from agentlease.grants import LocalBroker, SigningKey
from agentlease.testing import ModelServer
from agentlease_llamaindex import SecureLLM


class Recorder(BaseEventHandler):
    """Keeps every instrumentation event."""

    events: list[BaseEvent] = []

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


def get_weather(city: str) -> str:
    """Return the weather in a city."""
    return f"sunny in {city}"


@pytest.fixture
def key_pem(tmp_path: Path) -> str:
    """The private key of the broker, as PEM text."""
    path = tmp_path / "signing.pem"
    SigningKey.generate().save(path)
    return path.read_text(encoding="ascii")


@pytest.fixture
def keyed_runtime(
    runtime: agentlease.Runtime, key_pem: str, tmp_path: Path
) -> Iterator[agentlease.Runtime]:
    """The test routes, with a broker whose private key the test has read."""
    keyed = agentlease.Runtime(
        routes=list(runtime.routes),
        broker=LocalBroker(key_file=tmp_path / "signing.pem"),
        audit=AuditLog([MemoryAuditSink()]),
    )
    try:
        yield keyed
    finally:
        keyed.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    handler = Recorder(events=[])
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    try:
        yield handler
    finally:
        dispatcher.event_handlers.remove(handler)


@pytest.fixture
def canaries(
    keyed_runtime: agentlease.Runtime, model_server: ModelServer, key_pem: str, recorder: Recorder
) -> tuple[SecureLLM, list[str]]:
    """A SecureLLM after calls of every style, and the secrets those calls used."""
    llm = SecureLLM(runtime=keyed_runtime)
    messages = [ChatMessage(role="user", content="hello")]
    with agentlease.task("canary", runtime=keyed_runtime) as task:
        llm.chat(messages)
        list(llm.stream_chat(messages))
        llm.complete("hello")
        llm.chat_with_tools([FunctionTool.from_defaults(get_weather)], user_msg="weather")
        tokens = [grant.token for grant in task.grants]

    sent = {
        request.headers["authorization"].removeprefix("Bearer ")
        for request in model_server.requests
    }
    assert set(tokens) <= sent
    key_body = "".join(line for line in key_pem.splitlines() if not line.startswith("-----"))
    return llm, [*tokens, key_body[:40], key_body[-40:]]


def assert_clean(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text


def test_to_dict_has_no_secret(canaries: tuple[SecureLLM, list[str]]) -> None:
    llm, secrets = canaries

    assert_clean(json.dumps(llm.to_dict(), default=repr), secrets)


def test_to_json_has_no_secret(canaries: tuple[SecureLLM, list[str]]) -> None:
    llm, secrets = canaries

    assert_clean(llm.to_json(), secrets)


def test_repr_has_no_secret(canaries: tuple[SecureLLM, list[str]]) -> None:
    llm, secrets = canaries

    assert_clean(repr(llm), secrets)


def test_to_dict_names_only_fields(canaries: tuple[SecureLLM, list[str]]) -> None:
    llm, _ = canaries

    assert "runtime" not in llm.to_dict()
    assert llm.to_dict()["class_name"] == "agentlease_SecureLLM"


def test_pickle_has_no_signing_key(canaries: tuple[SecureLLM, list[str]]) -> None:
    llm, secrets = canaries

    data = pickle.dumps(llm)

    assert_clean(data.decode("latin-1"), secrets)
    restored = pickle.loads(data)  # noqa: S301 - the test's own pickle
    assert restored.model == llm.model


def test_events_have_no_secret(recorder: Recorder, canaries: tuple[SecureLLM, list[str]]) -> None:
    _, secrets = canaries

    assert recorder.events
    for event in recorder.events:
        assert_clean(json.dumps(event.model_dump(), default=repr), secrets)
        assert_clean(repr(event), secrets)


def test_from_dict_round_trip() -> None:
    llm = SecureLLM("secure", temperature=0.1, additional_kwargs={"seed": 1})

    restored = SecureLLM.from_dict(llm.to_dict())

    assert restored.model == "secure"
    assert restored.temperature == 0.1
    assert restored.additional_kwargs == {"seed": 1}
