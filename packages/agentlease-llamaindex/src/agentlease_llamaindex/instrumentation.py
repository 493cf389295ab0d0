"""LlamaIndex instrumentation handlers that add the framework's view of a run to the audit.

`instrument()` registers a span handler and an event handler on LlamaIndex's instrumentation
dispatcher. For every outermost LLM call, tool call, retrieval and agent run made inside an
agentlease task, they append a ``framework.llm``, ``framework.tool``, ``framework.retrieve``
or ``framework.agent`` record to the task's audit session, with its duration and, for LLM
calls, token usage. An LLM call that does not go through `SecureLLM` also gets a
``finding`` record with the credential mode ``unmediated``: it bypassed agentlease's
routing, grants and policy.

The handlers observe and never enforce: LlamaIndex swallows handler exceptions, so they
cannot stop a call. Enforcement lives in `SecureLLM` and the guarded tools. Because the
dispatcher looks handlers up at call time, calls of LLMs built before `instrument()` are
seen too, unlike LlamaIndex's legacy callback manager, which an LLM captures when built.

A streaming call's span closes when the generator is returned, before the first token, so
the handlers finish a stream's record from the stream's in-progress and end events.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass, field
from typing import Any, cast

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.callbacks.token_counting import get_tokens_from_response
from llama_index.core.instrumentation import (
    Dispatcher,  # pyright: ignore[reportPrivateImportUsage]
    get_dispatcher,  # pyright: ignore[reportPrivateImportUsage]
)
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
)
from llama_index.core.instrumentation.span import BaseSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.schema import NodeWithScore
from llama_index.core.tools.types import BaseTool, ToolOutput
from llama_index.core.workflow import Workflow

from agentlease.errors import PolicyDenied
from agentlease.routing import DATA_CLASSES
from agentlease.task import Task, current_task
from agentlease_llamaindex.llms import SecureLLM
from agentlease_llamaindex.tools import SecureFunctionTool, SecureTool

__all__ = ["AuditEventHandler", "AuditSpanHandler", "Instrumentation", "instrument"]

logger = logging.getLogger(__name__)

_LLM_METHODS = frozenset(
    {
        "chat",
        "achat",
        "stream_chat",
        "astream_chat",
        "complete",
        "acomplete",
        "stream_complete",
        "astream_complete",
    }
)
_TOOL_METHODS = frozenset({"call", "acall"})
_RETRIEVE_METHODS = frozenset({"retrieve", "aretrieve"})
_AGENT_METHODS = frozenset({"run"})

# The dispatcher names spans "<Class>.<method>-<uuid4>"; a uuid4 in text form is 36 long.
_UUID_SUFFIX = 37

# Bounds on what the tracker keeps for spans and streams that never report an end (a
# stream dropped before its first token sends no event).
_MAX_OPEN_SPANS = 10_000
_MAX_OPEN_STREAMS = 1_000

# A wrapper LLM (such as LlamaIndex's StructuredLLM) delegates to the LLM in its `llm` field.
_MAX_WRAPPER_DEPTH = 4


@dataclass(slots=True)
class _Call:
    """One open span, and what is needed to audit it if it is an outermost call in a task."""

    parent_id: str | None
    kind: str | None
    task: Task | None = None
    resource: str = ""
    attributes: dict[str, Any] = field(default_factory=lambda: {})
    started: float = 0.0
    chunks: int = 0
    first_chunk: float | None = None
    usage: dict[str, int] | None = None


class _Tracker:
    """The state both handlers share: open spans, and streams waiting for their end event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: OrderedDict[str, _Call] = OrderedDict()
        self._streams: OrderedDict[str, _Call] = OrderedDict()

    # -- spans -----------------------------------------------------------------------------

    def enter(self, span_id: str, parent_id: str | None, instance: Any) -> None:
        kind = _kind(instance, _method_name(span_id))
        call = _Call(parent_id=parent_id, kind=kind)
        with self._lock:
            outermost = kind is not None and not self._has_ancestor(parent_id, kind)
            self._spans[span_id] = call
            if len(self._spans) > _MAX_OPEN_SPANS:
                self._spans.popitem(last=False)
        if not outermost:
            return
        task = current_task()
        if task is None or task.closed:
            return

        call.task = task
        call.started = time.monotonic()
        call.resource, call.attributes = _describe(kind, instance, _method_name(span_id))
        if kind == "llm" and not call.attributes["mediated"]:
            task.audit(
                "finding",
                resource=call.resource,
                credential={"mode": "unmediated"},
                attributes={
                    "finding": "unmediated_llm_call",
                    "detail": "an LLM call bypassed agentlease routing, grants and policy",
                    **call.attributes,
                },
            )

    def exit(self, span_id: str, result: Any) -> None:
        with self._lock:
            call = self._spans.pop(span_id, None)
            if call is None or call.task is None:
                return
            if call.kind == "llm" and _is_stream(result):
                self._streams[span_id] = call
                if len(self._streams) > _MAX_OPEN_STREAMS:
                    self._streams.popitem(last=False)
                return
        _finish(call, result=result)

    def drop(self, span_id: str, error: BaseException | None) -> None:
        with self._lock:
            call = self._spans.pop(span_id, None)
        if call is not None and call.task is not None:
            _finish(call, error=error)

    def _has_ancestor(self, parent_id: str | None, kind: str) -> bool:
        while parent_id is not None:
            parent = self._spans.get(parent_id)
            if parent is None:
                return False
            if parent.kind == kind:
                return True
            parent_id = parent.parent_id
        return False

    # -- stream events ---------------------------------------------------------------------

    def event(self, event: BaseEvent) -> None:
        span_id = event.span_id
        if span_id is None:
            return
        if isinstance(event, (LLMChatInProgressEvent, LLMCompletionInProgressEvent)):
            with self._lock:
                call = self._streams.get(span_id)
                if call is None:
                    return
                call.chunks += 1
                if call.first_chunk is None:
                    call.first_chunk = time.monotonic()
            usage = _usage(event.response)
            if usage is not None:
                call.usage = usage
        elif isinstance(event, (LLMChatEndEvent, LLMCompletionEndEvent)):
            with self._lock:
                call = self._streams.pop(span_id, None)
            if call is not None:
                _finish(call, result=event.response, stream=True)
        elif isinstance(event, ExceptionEvent):
            with self._lock:
                call = self._streams.pop(span_id, None)
            if call is not None:
                _finish(call, error=event.exception, stream=True)


def _method_name(span_id: str) -> str:
    if len(span_id) <= _UUID_SUFFIX or span_id[-_UUID_SUFFIX] != "-":
        return ""
    return span_id[:-_UUID_SUFFIX].rpartition(".")[2]


def _kind(instance: Any, method: str) -> str | None:
    if instance is None:
        return None
    if method in _LLM_METHODS and isinstance(instance, BaseLLM):
        return "llm"
    if method in _TOOL_METHODS and isinstance(instance, BaseTool):
        return "tool"
    if method in _RETRIEVE_METHODS and isinstance(instance, BaseRetriever):
        return "retrieve"
    if method in _AGENT_METHODS and isinstance(instance, Workflow):
        return "agent"
    return None


def _is_mediated(llm: Any) -> bool:
    """Return whether an LLM's calls go through `SecureLLM`, directly or through wrappers."""
    for _ in range(_MAX_WRAPPER_DEPTH + 1):
        if isinstance(llm, SecureLLM):
            return True
        llm = getattr(llm, "llm", None)
        if not isinstance(llm, BaseLLM):
            return False
    return False


def _describe(kind: str | None, instance: Any, method: str) -> tuple[str, dict[str, Any]]:
    class_name = type(instance).__name__
    if kind == "llm":
        try:
            model_name = str(instance.metadata.model_name)
        except Exception:  # an LLM's metadata may read configuration that is missing
            model_name = "unknown"
        attributes = {
            "llm_class": class_name,
            "model_name": model_name,
            "method": method,
            "mediated": _is_mediated(instance),
        }
        return f"llm:{class_name}", attributes
    if kind == "tool":
        name = instance.metadata.get_name()
        guarded = isinstance(instance, (SecureFunctionTool, SecureTool))
        return f"tool:{name}", {"tool": name, "guarded": guarded, "method": method}
    if kind == "retrieve":
        return f"retriever:{class_name}", {"retriever": class_name, "method": method}
    agent_name = getattr(instance, "name", None)
    name = agent_name if isinstance(agent_name, str) and agent_name else class_name
    return f"agent:{name}", {"workflow": class_name, "agent": name}


def _is_stream(result: Any) -> bool:
    return isinstance(result, (Generator, AsyncGenerator)) or inspect.isasyncgen(result)


def _usage(response: Any) -> dict[str, int] | None:
    if response is None:
        return None
    try:
        input_tokens, output_tokens = get_tokens_from_response(response)
    except Exception:  # a provider's raw response may not be a mapping
        return None
    if not input_tokens and not output_tokens:
        return None
    return {
        "input_tokens": int(input_tokens),
        "output_tokens": int(output_tokens),
        "total_tokens": int(input_tokens) + int(output_tokens),
    }


def _finish(
    call: _Call,
    *,
    result: Any = None,
    error: BaseException | None = None,
    stream: bool = False,
) -> None:
    task = call.task
    assert task is not None
    attributes = dict(call.attributes)
    attributes["duration_ms"] = round((time.monotonic() - call.started) * 1000, 3)
    closed_early = isinstance(error, GeneratorExit)
    if closed_early:
        error = None
        attributes["stream_closed_early"] = True
    outcome = "ok"
    if error is not None:
        outcome = "denied" if isinstance(error, PolicyDenied) else "error"
    usage: dict[str, int] | None = None

    if call.kind == "llm":
        action = "framework.llm"
        attributes["stream"] = stream
        usage = call.usage or _usage(result)
        if stream:
            attributes["chunks"] = call.chunks
            if call.first_chunk is not None:
                attributes["time_to_first_chunk_ms"] = round(
                    (call.first_chunk - call.started) * 1000, 3
                )
    elif call.kind == "tool":
        action = "framework.tool"
        is_error = isinstance(result, ToolOutput) and result.is_error
        attributes["is_error"] = is_error
        if is_error and outcome == "ok":
            outcome = "error"
    elif call.kind == "retrieve":
        action = "framework.retrieve"
        nodes = cast(list[Any], result) if isinstance(result, list) else []
        attributes["nodes"] = len(nodes)
        attributes["data_classes"] = _labels(nodes)
    else:
        action = "framework.agent"

    task.audit(
        action,
        resource=call.resource,
        outcome=outcome,
        error=error,
        usage=usage,
        attributes=attributes,
    )


def _labels(nodes: list[Any]) -> list[str]:
    # NOTE: reads the default "data_class" metadata key only. Nodes labelled under a custom
    # DataClassLabeler(metadata_key=...) key are listed as unlabelled here; the labeller itself
    # still raises the task's data class and records that raise.
    labels: set[str] = set()
    for node in nodes:
        if not isinstance(node, NodeWithScore):
            continue
        value = node.node.metadata.get("data_class")
        if value is None:
            continue
        label = str(value).strip().lower()
        labels.add(label if label in DATA_CLASSES else "unknown")
    return sorted(labels)


class AuditSpanHandler(BaseSpanHandler[BaseSpan]):
    """A span handler that audits outermost LLM, tool, retrieval and agent calls.

    Register it with `instrument()`; it keeps its own light records instead of LlamaIndex
    span objects.
    """

    _tracker: _Tracker = PrivateAttr()
    _owner: Instrumentation = PrivateAttr()

    def __init__(self, tracker: _Tracker, owner: Instrumentation) -> None:
        super().__init__()
        self._tracker = tracker
        self._owner = owner

    @classmethod
    def class_name(cls) -> str:
        """Return the handler's name."""
        return "agentlease_AuditSpanHandler"

    @property
    def instrumentation(self) -> Instrumentation:
        """The registration this handler belongs to."""
        return self._owner

    def span_enter(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Start tracking a span and write a finding for an unmediated LLM call."""
        try:
            self._tracker.enter(id_, parent_id, instance)
        except Exception:
            logger.debug("audit span handler failed on enter of %s", id_, exc_info=True)

    def span_exit(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        """Audit a finished call, or wait for a stream's end event."""
        try:
            self._tracker.exit(id_, result)
        except Exception:
            logger.debug("audit span handler failed on exit of %s", id_, exc_info=True)

    def span_drop(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        """Audit a call that raised."""
        try:
            self._tracker.drop(id_, err)
        except Exception:
            logger.debug("audit span handler failed on drop of %s", id_, exc_info=True)

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> BaseSpan | None:
        """Create no LlamaIndex span object: the tracker keeps what the audit needs."""
        return None

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> BaseSpan | None:
        """Return None: there is no LlamaIndex span object to close."""
        return None

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> BaseSpan | None:
        """Return None: there is no LlamaIndex span object to drop."""
        return None


class AuditEventHandler(BaseEventHandler):
    """An event handler that finishes streaming LLM calls from their in-progress and end events.

    Register it with `instrument()`.
    """

    _tracker: _Tracker = PrivateAttr()

    def __init__(self, tracker: _Tracker) -> None:
        super().__init__()
        self._tracker = tracker

    @classmethod
    def class_name(cls) -> str:
        """Return the handler's name."""
        return "agentlease_AuditEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        """Count a stream's chunks and usage, and audit the stream when it ends."""
        try:
            self._tracker.event(event)
        except Exception:
            logger.debug("audit event handler failed on %s", event.class_name(), exc_info=True)


def _span_handlers(dispatcher: Dispatcher) -> list[object]:
    return list(dispatcher.span_handlers)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]


class Instrumentation:
    """The handlers `instrument()` registered on one dispatcher.

    Every `instrument()` call that returned this registration is matched by one
    `uninstrument()` call (a ``with`` block does it on exit), and the handlers are removed
    when the last one is made. So a library that instruments inside a ``with`` block does not
    remove the application's registration.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        tracker = _Tracker()
        self.dispatcher = dispatcher
        self.span_handler = AuditSpanHandler(tracker, self)
        self.event_handler = AuditEventHandler(tracker)

    @property
    def active(self) -> bool:
        """Whether the handlers are registered."""
        return any(handler is self.span_handler for handler in _span_handlers(self.dispatcher))

    def uninstrument(self) -> None:
        """Release one `instrument()` call, and remove the handlers after the last one.

        Calling it more often than `instrument()` does nothing.
        """
        with _registry_lock:
            users = _users.pop(self, 0) - 1
            if users > 0:
                _users[self] = users
                return
            # Assign new lists, so a dispatch iterating the old ones is not disturbed.
            self.dispatcher.span_handlers = [  # pyright: ignore[reportAttributeAccessIssue]
                handler
                for handler in _span_handlers(self.dispatcher)
                if handler is not self.span_handler
            ]
            self.dispatcher.event_handlers = [
                handler
                for handler in self.dispatcher.event_handlers
                if handler is not self.event_handler
            ]

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.uninstrument()

    def __repr__(self) -> str:
        return f"Instrumentation(dispatcher={self.dispatcher.name!r}, active={self.active})"


_registry_lock = threading.Lock()
# How many `instrument()` calls each live registration has not released yet.
_users: dict[Instrumentation, int] = {}


def instrument(dispatcher: Dispatcher | None = None) -> Instrumentation:
    """Register agentlease's audit handlers on a LlamaIndex dispatcher, once.

    Calling it again for the same dispatcher returns the registration already in place and
    counts one more user of it, so libraries and applications can both call it. Each call is
    released by one `Instrumentation.uninstrument()`, or by leaving its ``with`` block.

    Args:
        dispatcher: The dispatcher to register on; defaults to LlamaIndex's root dispatcher,
            which receives the events and spans of every LlamaIndex module.

    Returns:
        The registration.

    Example:
        >>> from agentlease_llamaindex import instrument
        >>> with instrument() as handle:
        ...     handle.active
        True
    """
    target = dispatcher if dispatcher is not None else get_dispatcher()
    with _registry_lock:
        for handler in _span_handlers(target):
            if isinstance(handler, AuditSpanHandler):
                registration = handler.instrumentation
                _users[registration] = _users.get(registration, 0) + 1
                return registration
        registration = Instrumentation(target)
        _users[registration] = 1
        target.add_span_handler(registration.span_handler)  # pyright: ignore[reportUnknownMemberType]
        target.add_event_handler(registration.event_handler)
    return registration
