"""SecureLLM against the local model server: every call style, tools and structured output."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatStartEvent
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel, ValidationError

import agentlease
from agentlease.errors import NoPermittedRouteError
from agentlease.testing import ModelServer, Reply
from agentlease_llamaindex import SecureLLM


class Song(BaseModel):
    """A song."""

    title: str
    year: int


def get_weather(city: str) -> str:
    """Return the weather in a city."""
    return f"sunny in {city}"


def get_time(city: str) -> str:
    """Return the local time in a city."""
    return f"noon in {city}"


WEATHER = FunctionTool.from_defaults(get_weather)
TIME = FunctionTool.from_defaults(get_time)


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


def last_body(server: ModelServer) -> dict[str, Any]:
    body = server.requests[-1].json
    assert isinstance(body, dict)
    return body


# -- call styles ---------------------------------------------------------------------------


def test_chat_returns_text_and_usage(llm: SecureLLM) -> None:
    response = llm.chat(user("hello there"))

    assert response.message.role == MessageRole.ASSISTANT
    assert "hello there" in (response.message.content or "")
    assert response.raw is not None
    assert response.raw["usage"]["total_tokens"] > 0
    assert response.additional_kwargs["completion_tokens"] > 0


async def test_achat_returns_text(llm: SecureLLM) -> None:
    response = await llm.achat(user("hello async"))

    assert "hello async" in (response.message.content or "")


def test_stream_chat_accumulates_deltas(llm: SecureLLM) -> None:
    responses = list(llm.stream_chat(user("stream this")))

    assert len(responses) > 2
    assert "".join(r.delta or "" for r in responses) == responses[-1].message.content
    assert "stream this" in (responses[-1].message.content or "")


def test_stream_chat_carries_usage_once(llm: SecureLLM) -> None:
    responses = list(llm.stream_chat(user("count tokens")))

    with_usage = [r for r in responses if r.additional_kwargs.get("total_tokens")]
    assert len(with_usage) == 1


async def test_astream_chat_accumulates_deltas(llm: SecureLLM) -> None:
    responses = [r async for r in await llm.astream_chat(user("async stream"))]

    assert "".join(r.delta or "" for r in responses) == responses[-1].message.content
    assert "async stream" in (responses[-1].message.content or "")


def test_complete_returns_text(llm: SecureLLM) -> None:
    response = llm.complete("complete me")

    assert "complete me" in response.text


async def test_acomplete_returns_text(llm: SecureLLM) -> None:
    response = await llm.acomplete("complete async")

    assert "complete async" in response.text


def test_stream_complete_accumulates(llm: SecureLLM) -> None:
    responses = list(llm.stream_complete("stream completion"))

    assert "".join(r.delta or "" for r in responses) == responses[-1].text


async def test_astream_complete_accumulates(llm: SecureLLM) -> None:
    responses = [r async for r in await llm.astream_complete("async completion")]

    assert "".join(r.delta or "" for r in responses) == responses[-1].text
    assert "async completion" in responses[-1].text


def test_complete_sends_system_prompt(
    runtime: agentlease.Runtime, model_server: ModelServer
) -> None:
    llm = SecureLLM(system_prompt="Answer briefly.")

    llm.complete("hi")

    messages = last_body(model_server)["messages"]
    assert messages[0] == {"role": "system", "content": "Answer briefly."}


def test_predict_formats_prompt(llm: SecureLLM) -> None:
    output = llm.predict(PromptTemplate("Say {word}"), word="hi")

    assert "Say hi" in output


def test_chat_emits_one_start_event(llm: SecureLLM) -> None:
    class Counter(BaseEventHandler):
        starts: int = 0

        def handle(self, event: BaseEvent, **kwargs: Any) -> None:
            if isinstance(event, LLMChatStartEvent):
                self.starts += 1

    counter = Counter()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(counter)
    try:
        llm.chat(user("count events"))
    finally:
        dispatcher.event_handlers.remove(counter)

    assert counter.starts == 1


# -- request options -----------------------------------------------------------------------


def test_fields_reach_request(runtime: agentlease.Runtime, model_server: ModelServer) -> None:
    llm = SecureLLM(temperature=0.2, max_tokens=50, additional_kwargs={"seed": 7})

    llm.chat(user("options"))

    body = last_body(model_server)
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 50
    assert body["seed"] == 7


def test_call_kwargs_override_fields(llm: SecureLLM, model_server: ModelServer) -> None:
    llm.chat(user("options"), temperature=0.9, stop="END")

    body = last_body(model_server)
    assert body["temperature"] == 0.9
    assert body["stop"] == ["END"]


def test_framework_kwargs_not_sent(llm: SecureLLM, model_server: ModelServer) -> None:
    llm.chat(user("options"), verbose=True, allow_parallel_tool_calls=False)

    body = last_body(model_server)
    assert "verbose" not in body
    assert "allow_parallel_tool_calls" not in body


def test_unknown_field_rejected() -> None:
    with pytest.raises(ValidationError):
        SecureLLM(temprature=0.5)  # pyright: ignore[reportCallIssue]


def test_metadata_declares_function_calling() -> None:
    metadata = SecureLLM("secure", max_tokens=64).metadata

    assert metadata.is_function_calling_model
    assert metadata.is_chat_model
    assert metadata.model_name == "secure"
    assert metadata.num_output == 64


# -- routing -------------------------------------------------------------------------------


def test_confidential_task_routes_to_secure(llm: SecureLLM, model_server: ModelServer) -> None:
    with agentlease.task("review", data_class="confidential"):
        response = llm.chat(user("private"))

    assert model_server.requests[-1].path.startswith("/secure/")
    assert response.raw is not None
    assert response.raw["agentlease_route"] == "secure"


def test_restricted_task_denies_call(llm: SecureLLM, model_server: ModelServer) -> None:
    with agentlease.task("vault", data_class="restricted"), pytest.raises(NoPermittedRouteError):
        llm.chat(user("top secret"))

    assert model_server.requests == []


def test_call_sends_grant_as_bearer(llm: SecureLLM, model_server: ModelServer) -> None:
    with agentlease.task("auth") as task:
        llm.chat(user("hello"))
        grant = task.grants[0]

    assert model_server.requests[-1].headers["authorization"] == f"Bearer {grant.token}"


# -- tools ---------------------------------------------------------------------------------


def test_chat_with_tools_returns_tool_call(llm: SecureLLM) -> None:
    response = llm.chat_with_tools([WEATHER, TIME], user_msg="use get_time for 'Paris'")

    calls = llm.get_tool_calls_from_response(response)
    assert [call.tool_name for call in calls] == ["get_time"]
    assert calls[0].tool_kwargs == {"city": "Paris"}
    assert calls[0].tool_id


def test_tools_sent_as_functions(llm: SecureLLM, model_server: ModelServer) -> None:
    llm.chat_with_tools([WEATHER], user_msg="weather")

    tools = last_body(model_server)["tools"]
    assert tools[0]["type"] == "function"
    assert tools[0]["function"]["name"] == "get_weather"
    assert tools[0]["function"]["parameters"]["required"] == ["city"]


def test_tool_required_sends_required(llm: SecureLLM, model_server: ModelServer) -> None:
    llm.chat_with_tools([WEATHER], user_msg="weather", tool_required=True)

    assert last_body(model_server)["tool_choice"] == "required"


def test_tool_choice_name_forces_tool(llm: SecureLLM, model_server: ModelServer) -> None:
    response = llm.chat_with_tools([WEATHER, TIME], user_msg="weather", tool_choice="get_time")

    assert last_body(model_server)["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_time"},
    }
    assert llm.get_tool_calls_from_response(response)[0].tool_name == "get_time"


def test_parallel_calls_trimmed_by_default(llm: SecureLLM, model_server: ModelServer) -> None:
    model_server.script(
        Reply.tool_calls([("get_weather", {"city": "A"}), ("get_time", {"city": "B"})])
    )

    response = llm.chat_with_tools([WEATHER, TIME], user_msg="both")

    calls = llm.get_tool_calls_from_response(response)
    assert [call.tool_name for call in calls] == ["get_weather"]
    assert len(response.message.additional_kwargs["tool_calls"]) == 1


def test_parallel_calls_kept_when_allowed(llm: SecureLLM, model_server: ModelServer) -> None:
    model_server.script(
        Reply.tool_calls([("get_weather", {"city": "A"}), ("get_time", {"city": "B"})])
    )

    response = llm.chat_with_tools([WEATHER, TIME], user_msg="both", allow_parallel_tool_calls=True)

    calls = llm.get_tool_calls_from_response(response)
    assert [call.tool_name for call in calls] == ["get_weather", "get_time"]


def test_no_tool_call_raises_by_default(llm: SecureLLM) -> None:
    response = llm.chat(user("just text"))

    with pytest.raises(ValueError, match="returned no tool call"):
        llm.get_tool_calls_from_response(response)


def test_no_tool_call_allowed_returns_empty(llm: SecureLLM) -> None:
    response = llm.chat(user("just text"))

    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []


def test_tool_results_sent_back(llm: SecureLLM, model_server: ModelServer) -> None:
    history = [
        *user("weather in Oslo"),
        ChatMessage(
            role=MessageRole.ASSISTANT,
            blocks=[
                ToolCallBlock(
                    tool_call_id="call_1", tool_name="get_weather", tool_kwargs={"city": "Oslo"}
                )
            ],
        ),
        ChatMessage(
            role=MessageRole.TOOL,
            blocks=[TextBlock(text="rain in Oslo")],
            additional_kwargs={"tool_call_id": "call_1"},
        ),
    ]

    response = llm.chat_with_tools([WEATHER], chat_history=history)

    messages = last_body(model_server)["messages"]
    assert messages[1]["tool_calls"][0]["id"] == "call_1"
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert messages[2] == {"role": "tool", "content": "rain in Oslo", "tool_call_id": "call_1"}
    assert "rain in Oslo" in (response.message.content or "")


def test_stream_merges_tool_call_deltas(llm: SecureLLM) -> None:
    responses = list(llm.stream_chat_with_tools([WEATHER], user_msg="get_weather for 'Rome'"))

    calls = llm.get_tool_calls_from_response(responses[-1])
    assert [call.tool_name for call in calls] == ["get_weather"]
    assert calls[0].tool_kwargs == {"city": "Rome"}


# -- structured output ---------------------------------------------------------------------


def test_structured_predict_returns_model(llm: SecureLLM) -> None:
    song = llm.structured_predict(Song, PromptTemplate("Name a song about {topic}"), topic="rain")

    assert isinstance(song, Song)


async def test_astructured_predict_returns_model(llm: SecureLLM) -> None:
    song = await llm.astructured_predict(
        Song, PromptTemplate("Name a song about {topic}"), topic="sun"
    )

    assert isinstance(song, Song)


def test_structured_predict_forces_tool(llm: SecureLLM, model_server: ModelServer) -> None:
    llm.structured_predict(Song, PromptTemplate("Name a song"))

    assert last_body(model_server)["tool_choice"] == "required"


def test_stream_structured_predict_ends_with_model(
    llm: SecureLLM, model_server: ModelServer
) -> None:
    model_server.script(Reply.tool_call("Song", {"title": "Rain", "year": 1966}))

    partials = list(llm.stream_structured_predict(Song, PromptTemplate("Name a song")))

    assert partials[-1] == Song(title="Rain", year=1966)


def test_structured_llm_chat_returns_json(llm: SecureLLM, model_server: ModelServer) -> None:
    model_server.script(Reply.tool_call("Song", {"title": "Rain", "year": 1966}))
    structured = llm.as_structured_llm(Song)

    response = structured.chat(user("Name a song"))

    assert Song.model_validate_json(response.message.content or "") == Song(title="Rain", year=1966)
