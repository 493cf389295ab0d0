"""The default responder: plausible answers for tool-calling agents and structured output."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from agentlease.testing._replies import Reply

__all__ = ["default_reply"]

logger = logging.getLogger(__name__)

_WORD_PIECES = re.compile(r"\s*\S+\s*|\s+")


def split_words(text: str) -> list[str]:
    return _WORD_PIECES.findall(text)


def split_in_two(text: str) -> list[str]:
    middle = max(1, len(text) // 2)
    return [text[:middle], text[middle:]] if len(text) > 1 else [text]


def count_words(text: str) -> int:
    return len(text.split())


def count_request_words(request: Mapping[str, Any]) -> int:
    total = 0
    for message in _messages(request):
        total += count_words(_text_of(message.get("content")))
        for call in _as_list(message.get("tool_calls")):
            arguments = _as_dict(_as_dict(call).get("function")).get("arguments")
            total += count_words(arguments if isinstance(arguments, str) else "")
    return total


# The default responder


def default_reply(request: Mapping[str, Any]) -> Reply:
    """Answer a chat completions request the way a cooperative model would, deterministically.

    The rules, in order:

    1. When the request offers tools, `tool_choice` is not ``"none"`` and the last message is
       not a tool result, call one tool: the one `tool_choice` names, else the first tool whose
       name appears in the last user message, else the first tool. Its arguments follow its
       JSON schema (see below).
    2. When `response_format` is ``json_schema``, answer with JSON that matches the schema; for
       ``json_object``, answer with an object whose keys are the quoted words of the last user
       message (or ``{"answer": ...}`` when it quotes none).
    3. When the last message is a tool result, answer with text that includes every trailing
       tool result.
    4. Otherwise answer ``This is a scripted answer to: <last user text>``.

    Text and JSON answers are cut at the first `stop` sequence, and after `max_tokens`
    whitespace-separated words (finish reason ``length``).

    Generated values: required properties, plus optional ones that declare a default; `const`,
    then `default`, then the first `enum` value; integers 3 and numbers 3.0 (moved inside any
    minimum or maximum); booleans true; arrays of `minItems` items (at least one). A string, an
    integer or a number takes the value written after its name in the last user message
    (``city: Paris``, ``count=5``, ``name is "Ada"``); otherwise each string takes the next quoted
    phrase of that message, and ``"example"`` when none is left.
    """
    messages = _messages(request)
    last = messages[-1] if messages else {}
    prompt = _last_user_text(messages)
    after_tool = last.get("role") == "tool"
    tools = _tool_functions(request.get("tools"))
    tool_choice = request.get("tool_choice")

    if tools and not after_tool and tool_choice != "none":
        tool = _pick_tool(tools, tool_choice, prompt)
        if tool is None:
            return Reply.error(400, "tool_choice names a tool that is not in tools.")
        schema = _as_dict(tool.get("parameters"))
        arguments = _as_dict(_ValueGenerator(schema, prompt).value(schema, None, 0))
        return Reply.tool_call(tool["name"], arguments)

    response_format = _as_dict(request.get("response_format"))
    format_type = response_format.get("type")
    if format_type == "json_schema":
        schema = _as_dict(_as_dict(response_format.get("json_schema")).get("schema"))
        content = _to_json_text_spaced(_ValueGenerator(schema, prompt).value(schema, None, 0))
    elif format_type == "json_object":
        keys = _quoted_phrases(prompt)
        value = dict.fromkeys(keys, "example") if keys else {"answer": _echo(prompt)}
        content = _to_json_text_spaced(value)
    elif after_tool:
        results = [
            _text_of(message.get("content")) for message in _trailing_tool_messages(messages)
        ]
        content = "The tool returned: " + "; ".join(results)
    else:
        content = _echo(prompt)

    content, finish_reason = _apply_limits(content, request)
    return Reply(kind="answer", content=content, finish_reason=finish_reason)


def _echo(prompt: str) -> str:
    return f"This is a scripted answer to: {prompt}" if prompt else "This is a scripted answer."


def _to_json_text_spaced(value: Any) -> str:
    # The default separators put spaces in the JSON, so a stream carries it in several pieces.
    return json.dumps(value, ensure_ascii=False)


def _apply_limits(content: str, request: Mapping[str, Any]) -> tuple[str, str]:
    stop = request.get("stop")
    sequences: list[Any] = [stop] if isinstance(stop, str) else _as_list(stop)
    positions = [content.find(s) for s in sequences if isinstance(s, str) and s]
    positions = [p for p in positions if p >= 0]
    if positions:
        content = content[: min(positions)]

    limit = request.get("max_tokens") or request.get("max_completion_tokens")
    if isinstance(limit, int) and limit >= 0:
        words = list(re.finditer(r"\S+", content))
        if len(words) > limit:
            end = words[limit - 1].end() if limit else 0
            return content[:end], "length"
    return content, "stop"


def _messages(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [_as_dict(m) for m in _as_list(request.get("messages")) if isinstance(m, dict)]


def _as_list(value: Any) -> list[Any]:
    return cast("list[Any]", value) if isinstance(value, list) else []


def _as_dict(value: Any) -> dict[str, Any]:
    return cast("dict[str, Any]", value) if isinstance(value, dict) else {}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in _as_list(content):
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(text := _as_dict(part).get("text"), str):
            texts.append(text)
    return " ".join(texts)


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _trailing_tool_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    trailing: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        trailing.append(message)
    return trailing[::-1]


def _tool_functions(tools: Any) -> list[dict[str, Any]]:
    functions = [_as_dict(_as_dict(tool).get("function")) for tool in _as_list(tools)]
    return [function for function in functions if isinstance(function.get("name"), str)]


def _pick_tool(tools: list[dict[str, Any]], tool_choice: Any, prompt: str) -> dict[str, Any] | None:
    if isinstance(tool_choice, dict):
        forced = _as_dict(_as_dict(tool_choice).get("function")).get("name")
        return next((tool for tool in tools if tool["name"] == forced), None)

    lowered = prompt.lower()
    mentioned = [
        (position, tool)
        for tool in tools
        if (position := lowered.find(cast("str", tool["name"]).lower())) >= 0
    ]
    if mentioned:
        return min(mentioned, key=lambda item: item[0])[1]
    return tools[0]


_QUOTED = re.compile(
    r"\"([^\"\n]+)\"|(?<!\w)'([^'\n]+)'(?!\w)|\u201c([^\u201d\n]+)\u201d|\u2018([^\u2019\n]+)\u2019"
)


def _quoted_phrases(text: str) -> list[str]:
    return [next(group for group in match.groups() if group) for match in _QUOTED.finditer(text)]


_STRING_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "http://127.0.0.1/example",
    "url": "http://127.0.0.1/example",
    "uuid": "00000000-0000-4000-8000-000000000000",
}

_MAX_DEPTH = 8


class _ValueGenerator:
    """Generates a value that matches a JSON schema, preferring values found in the prompt."""

    def __init__(self, root: Mapping[str, Any], prompt: str) -> None:
        self.root = root
        self.prompt = prompt
        self.quoted = _quoted_phrases(prompt)
        self.next_quote = 0

    def value(self, schema: Mapping[str, Any], name: str | None, depth: int) -> Any:
        schema = self.resolve(schema)
        if depth > _MAX_DEPTH:
            return None
        if "const" in schema:
            return schema["const"]
        if "default" in schema:
            return schema["default"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return cast("list[Any]", enum)[0]
        for key in ("anyOf", "oneOf"):
            options = _as_list(schema.get(key))
            if options:
                return self.value(self.pick_option(options), name, depth + 1)
        if "allOf" in schema:
            return self.value(self.merge(_as_list(schema["allOf"])), name, depth + 1)

        kind = self.kind(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, name, depth)
        if kind == "string":
            return self.string(schema, name)
        if kind == "integer":
            return int(self.number(schema, name, integer=True))
        if kind == "number":
            return self.number(schema, name, integer=False)
        if kind == "boolean":
            return True
        return None

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        for _ in range(_MAX_DEPTH):
            reference = schema.get("$ref")
            if not isinstance(reference, str) or not reference.startswith("#"):
                return schema
            target: Any = self.root
            for part in reference[1:].split("/"):
                if part:
                    key = part.replace("~1", "/").replace("~0", "~")
                    target = _as_dict(target).get(key)
            if not isinstance(target, dict):
                return {}
            schema = {
                **cast("dict[str, Any]", target),
                **{k: v for k, v in schema.items() if k != "$ref"},
            }
        return schema

    def pick_option(self, options: list[Any]) -> Mapping[str, Any]:
        resolved = [self.resolve(_as_dict(o)) for o in options if isinstance(o, dict)]
        for option in resolved:
            if option.get("type") != "null":
                return option
        return resolved[0] if resolved else {}

    def merge(self, parts: list[Any]) -> Mapping[str, Any]:
        merged: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        required: list[Any] = []
        for part in parts:
            if not isinstance(part, dict):
                continue
            resolved = self.resolve(_as_dict(part))
            merged.update(resolved)
            properties.update(_as_dict(resolved.get("properties")))
            required.extend(_as_list(resolved.get("required")))
        if properties:
            merged["properties"] = properties
            merged["required"] = required
        return merged

    @staticmethod
    def kind(schema: Mapping[str, Any]) -> str | None:
        declared = schema.get("type")
        if isinstance(declared, list):
            kinds = [k for k in cast("list[Any]", declared) if k != "null"]
            declared = kinds[0] if kinds else "null"
        if isinstance(declared, str):
            return declared
        if "properties" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return "string"

    def object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        required = set(_as_list(schema.get("required")))
        result: dict[str, Any] = {}
        for key, subschema in cast("dict[str, Any]", properties).items():
            if not isinstance(subschema, dict):
                continue
            sub = self.resolve(cast("dict[str, Any]", subschema))
            if key in required:
                result[key] = self.value(sub, key, depth + 1)
            elif "default" in sub:
                result[key] = sub["default"]
        return result

    def array(self, schema: Mapping[str, Any], name: str | None, depth: int) -> list[Any]:
        prefix = [_as_dict(p) for p in _as_list(schema.get("prefixItems")) if isinstance(p, dict)]
        if prefix:
            return [self.value(p, name, depth + 1) for p in prefix]
        items = _as_dict(schema.get("items"))
        count = schema.get("minItems")
        count = count if isinstance(count, int) and count > 1 else 1
        maximum = schema.get("maxItems")
        if isinstance(maximum, int):
            count = min(count, maximum)
        return [self.value(items, name, depth + 1) for _ in range(count)]

    def string(self, schema: Mapping[str, Any], name: str | None) -> str:
        text = self.after_name(name, number=False)
        if text is None and self.next_quote < len(self.quoted):
            text = self.quoted[self.next_quote]
            self.next_quote += 1
        if text is None:
            text = _STRING_FORMATS.get(str(schema.get("format")), "example")
        min_length = schema.get("minLength")
        if isinstance(min_length, int) and len(text) < min_length:
            text = text.ljust(min_length, "x")
        max_length = schema.get("maxLength")
        if isinstance(max_length, int):
            text = text[:max_length]
        return text

    def number(self, schema: Mapping[str, Any], name: str | None, *, integer: bool) -> float:
        found = self.after_name(name, number=True)
        value = float(found) if found is not None else 3.0
        step = 1.0 if integer else 0.5
        minimum = _number(schema.get("minimum"))
        exclusive_minimum = _number(schema.get("exclusiveMinimum"))
        maximum = _number(schema.get("maximum"))
        exclusive_maximum = _number(schema.get("exclusiveMaximum"))
        if minimum is not None and value < minimum:
            value = math.ceil(minimum) if integer else minimum
        if exclusive_minimum is not None and value <= exclusive_minimum:
            value = math.floor(exclusive_minimum) + step if integer else exclusive_minimum + step
        if maximum is not None and value > maximum:
            value = math.floor(maximum) if integer else maximum
        if exclusive_maximum is not None and value >= exclusive_maximum:
            value = math.ceil(exclusive_maximum) - step if integer else exclusive_maximum - step
        return float(math.floor(value)) if integer else float(value)

    def after_name(self, name: str | None, *, number: bool) -> str | None:
        if not name or not self.prompt:
            return None
        spelled = re.escape(name).replace("_", "[_ ]")
        value = r"(-?\d+(?:\.\d+)?)" if number else r"(?:\"([^\"]*)\"|'([^']*)'|([^\s,;!?]+))"
        pattern = rf"(?<!\w){spelled}(?!\w)\s*(?:[:=]|\s+is\s)\s*{value}"
        match = re.search(pattern, self.prompt, flags=re.IGNORECASE)
        if match is None:
            return None
        found = next(group for group in match.groups() if group is not None)
        return found if number else found.rstrip(".")


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
