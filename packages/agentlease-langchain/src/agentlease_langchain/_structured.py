"""Structured output for `SecureChatModel`: schemas, response formats and output parsers."""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Literal, cast

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import (
    BaseOutputParser,
    JsonOutputParser,
    PydanticOutputParser,
)
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass

from agentlease.errors import ConfigurationError

__all__ = [
    "METHODS",
    "Method",
    "check_method",
    "content_parser",
    "json_schema_format",
    "schema_name",
    "tool_parser",
    "with_raw",
]

Method = Literal["function_calling", "json_schema", "json_mode"]
METHODS: tuple[Method, ...] = ("function_calling", "json_schema", "json_mode")


def _is_pydantic_class(schema: object) -> bool:
    return isinstance(schema, type) and is_basemodel_subclass(schema)


def schema_name(schema: dict[str, Any] | type) -> str:
    """Return the function name LangChain derives for a schema."""
    return cast("str", convert_to_openai_tool(schema)["function"]["name"])


def json_schema_format(schema: dict[str, Any] | type, *, strict: bool | None) -> dict[str, Any]:
    """Return an OpenAI ``response_format`` of type ``json_schema`` for a schema."""
    function = cast("dict[str, Any]", convert_to_openai_tool(schema, strict=strict)["function"])
    json_schema: dict[str, Any] = {
        "name": function["name"],
        "schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        json_schema["description"] = function["description"]
    if strict is not None:
        json_schema["strict"] = strict
    return {"type": "json_schema", "json_schema": json_schema}


def tool_parser(schema: dict[str, Any] | type) -> BaseOutputParser[Any]:
    """Return the parser that reads the forced tool call of the `function_calling` method."""
    if _is_pydantic_class(schema):
        return PydanticToolsParser(tools=[cast("type", schema)], first_tool_only=True)
    return JsonOutputKeyToolsParser(key_name=schema_name(schema), first_tool_only=True)


def content_parser(schema: dict[str, Any] | type | None) -> BaseOutputParser[Any]:
    """Return the parser that reads JSON content, for the `json_schema` and `json_mode` methods."""
    if schema is not None and _is_pydantic_class(schema):
        return PydanticOutputParser(pydantic_object=cast("Any", schema))
    return JsonOutputParser()


def with_raw(
    model: Runnable[LanguageModelInput, AIMessage], parser: BaseOutputParser[Any]
) -> Runnable[LanguageModelInput, dict[str, Any]]:
    """Return a runnable that yields ``{"raw", "parsed", "parsing_error"}``.

    A parsing failure does not raise: `parsed` is None and `parsing_error` contains the error.
    """
    parse = RunnablePassthrough.assign(
        parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
    )
    unparsed = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=model) | parse.with_fallbacks([unparsed], exception_key="parsing_error")


def check_method(method: str, schema: object) -> Method:
    """Return `method` as a known structured output method.

    Raises:
        ConfigurationError: The method is unknown, or it needs a schema and none was given.
    """
    if method not in METHODS:
        raise ConfigurationError(
            f"Structured output method {method!r} is unknown; use 'function_calling', "
            "'json_schema' or 'json_mode'."
        )
    if schema is None and method != "json_mode":
        raise ConfigurationError(
            f"Structured output method {method!r} needs a schema; pass a pydantic class, "
            "a TypedDict or a JSON schema."
        )
    return method
