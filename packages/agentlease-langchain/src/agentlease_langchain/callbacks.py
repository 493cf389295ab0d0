"""A LangChain callback handler that adds the framework's view of a run to the audit.

`AgentleaseCallbackHandler` appends records to the audit session of the agentlease task that
is current when a LangChain run starts:

- ``framework.agent`` for the outermost chain or graph run of each task (an agent run),
  without the inner chains and graph nodes, which would flood the log;
- ``framework.llm`` for each outermost chat model or LLM run, with duration and token usage;
- ``framework.tool`` for each tool run, with hashes of its input and output;
- ``framework.retrieve`` for each outermost retriever run, with the number of documents and
  the data classes found in their ``data_class`` metadata.

A model run that does not go through `SecureChatModel` also gets a ``finding`` record with
the credential mode ``unmediated``, because it bypassed routing, grants and policy. So does a
tool run that neither `secure_tool` nor `AgentleaseMiddleware` guards. Records never contain
prompt or completion text, tool arguments or results (only their SHA-256 hashes), document
content or credentials.

Every record carries the LangChain ``run_id`` and, as ``parent_run_id``, the run id of the
nearest enclosing run that has a record, so a reviewer can rebuild the run tree. The handler
builds that tree from the ids LangChain passes; it never attaches OpenTelemetry context.

The handler observes and never enforces: LangChain swallows handler exceptions, so it cannot
stop a call. Enforcement lives in `SecureChatModel`, `secure_tool` and the middleware.

`instrument()` makes the handler part of every LangChain run started in the current context,
without passing ``config={"callbacks": [...]}``, through a LangChain configure hook on a
context variable.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.tracers.context import register_configure_hook

from agentlease.audit.hashing import stable_hash
from agentlease.errors import PolicyDenied, TaskError
from agentlease.grants import Grant
from agentlease.routing import DATA_CLASSES
from agentlease.task import Task, current_task
from agentlease.tools import current_grant
from agentlease_langchain.chat_models import SecureChatModel
from agentlease_langchain.tools import (
    GUARDED_METADATA_KEY,
    _tool_call_id,  # pyright: ignore[reportPrivateUsage]
)

__all__ = ["AgentleaseCallbackHandler", "Instrumentation", "instrument"]

logger = logging.getLogger(__name__)

# The marks of a `SecureChatModel` run in callback data: its `_llm_type` in the invocation
# params, and the class path LangChain puts in `serialized["id"]` for a model it cannot
# serialise.
_SECURE_LLM_TYPE = "agentlease"
_SECURE_MODEL_ID = [*SecureChatModel.__module__.split("."), SecureChatModel.__name__]

# A bound on the runs the tracker keeps, for runs whose end event never arrives.
_MAX_OPEN_RUNS = 10_000

# Model names and run names come from configuration and code. A length cap keeps an odd long
# value from bloating every record.
_MAX_NAME_CHARS = 200

# LangGraph raises subclasses of this exception to pause a graph (`interrupt()`) or to hand a
# command to a parent graph. They end a run without it failing.
_GRAPH_CONTROL_ERROR = "GraphBubbleUp"

_UNSET = object()

_FINDING_MODEL = "unmediated_llm_call"
_FINDING_MODEL_DETAIL = "a model call bypassed agentlease routing, grants and policy"
_FINDING_TOOL = "unguarded_tool_call"
_FINDING_TOOL_DETAIL = "a tool call bypassed agentlease policy, grants and audit"


@dataclass(slots=True)
class _Run:
    """One LangChain run, and what is needed to audit it if it has a record."""

    parent_id: UUID | None
    kind: str
    owner: int
    task: Task | None = None
    audited_parent: UUID | None = None
    resource: str = ""
    attributes: dict[str, Any] = field(default_factory=lambda: {})
    args_hash: str | None = None
    started: float = 0.0
    chunks: int = 0
    first_chunk: float | None = None


@dataclass(frozen=True, slots=True)
class _Start:
    """A run that started, and whether it is nested in a tool run."""

    run: _Run
    inside_tool: bool


class _Tracker:
    """The open runs of every handler, so that two handlers on one run record it once.

    The handler that receives a run's start event first owns the run and alone records it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: OrderedDict[UUID, _Run] = OrderedDict()

    def start(self, run_id: UUID, parent_id: UUID | None, kind: str, owner: int) -> _Start | None:
        """Track a run, or return None when another handler already tracks it."""
        task = current_task()
        if task is not None and task.closed:
            task = None

        with self._lock:
            if run_id in self._runs:
                return None
            run = _Run(parent_id=parent_id, kind=kind, owner=owner)
            self._runs[run_id] = run
            if len(self._runs) > _MAX_OPEN_RUNS:
                self._runs.popitem(last=False)

            inside_tool = False
            nested = False
            audited_parent: UUID | None = None
            ancestor_id = parent_id
            while ancestor_id is not None:
                ancestor = self._runs.get(ancestor_id)
                if ancestor is None:
                    break
                if ancestor.task is not None and audited_parent is None:
                    audited_parent = ancestor_id
                inside_tool = inside_tool or ancestor.kind == "tool"
                # Only the outermost run of a kind in a task has a record, except for tools,
                # whose nested runs are separate calls.
                nested = nested or (
                    kind != "tool" and ancestor.kind == kind and ancestor.task is task
                )
                ancestor_id = ancestor.parent_id

            if task is not None and not nested:
                run.task = task
                run.audited_parent = audited_parent
                run.started = time.monotonic()
        return _Start(run, inside_tool)

    def chunk(self, run_id: UUID, owner: int) -> None:
        """Count a streamed chunk of a model run."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.owner != owner or run.task is None:
                return
            run.chunks += 1
            if run.first_chunk is None:
                run.first_chunk = time.monotonic()

    def finish(self, run_id: UUID, owner: int) -> _Run | None:
        """Stop tracking a run, and return it when `owner` must record its end."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.owner != owner:
                return None
            del self._runs[run_id]
        return run if run.task is not None else None


_tracker = _Tracker()


class AgentleaseCallbackHandler(BaseCallbackHandler):
    """A callback handler that adds a LangChain run to the current task's audit session.

    Register it for every run with `instrument()`, or for one run with
    ``config={"callbacks": [AgentleaseCallbackHandler()]}``. Runs started outside an
    agentlease task are not recorded. Several handlers on one run record it once.

    Args:
        run_inline: Whether LangChain calls the handler on the event loop under async runs.
            With False, it calls the handler on an executor thread in a copy of the context,
            which costs a thread hop for each event, streamed tokens included. Either way the
            handler finds the task of the run.

    Example:
        >>> import agentlease
        >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
        >>> from agentlease_langchain import AgentleaseCallbackHandler
        >>> model = FakeListChatModel(responses=["hello"])
        >>> with agentlease.task("greet"):
        ...     model.invoke("Hi", config={"callbacks": [AgentleaseCallbackHandler()]}).text
        'hello'
    """

    def __init__(self, *, run_inline: bool = True) -> None:
        self.run_inline = run_inline

    def __repr__(self) -> str:
        return f"AgentleaseCallbackHandler(run_inline={self.run_inline})"

    # LangChain skips these events, which retry wrappers and user code send, and which carry
    # nothing the run tree lacks. `ignore_agent` must stay false because it also gates tool
    # events.
    @property
    def ignore_retry(self) -> bool:
        """Whether to skip retry events: always."""
        return True

    @property
    def ignore_custom_event(self) -> bool:
        """Whether to skip custom events: always."""
        return True

    # -- chains ----------------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Start tracking a chain or graph run. Only a task's outermost one gets a record."""
        try:
            start = _tracker.start(run_id, parent_run_id, "agent", id(self))
            if start is None or start.run.task is None:
                return
            run = start.run
            chain_class = _class_name(serialized)
            name = _text(kwargs.get("name")) or chain_class or "chain"
            run.resource = f"agent:{name}"
            run.attributes = {"agent": name, "chain_class": chain_class}
        except Exception:
            logger.warning(
                "audit callback failed on the start of chain run %s", run_id, exc_info=True
            )

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Record the end of a task's outermost chain run."""
        self._finish(run_id, "framework.agent")

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Record the failure of a task's outermost chain run."""
        self._finish(run_id, "framework.agent", error=error)

    # -- models ----------------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Start tracking a chat model run, and write a finding if it bypasses agentlease."""
        self._start_model(serialized, run_id, parent_run_id, metadata, kwargs)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Start tracking a text completion run, which always bypasses agentlease."""
        self._start_model(serialized, run_id, parent_run_id, metadata, kwargs)

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Count a streamed chunk."""
        try:
            _tracker.chunk(run_id, id(self))
        except Exception:
            logger.warning(
                "audit callback failed on a chunk of model run %s", run_id, exc_info=True
            )

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Record a model run with its duration and token usage."""
        self._finish(run_id, "framework.llm", result=response)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Record a failed model run."""
        self._finish(run_id, "framework.llm", error=error)

    def _start_model(
        self,
        serialized: dict[str, Any] | None,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        try:
            start = _tracker.start(run_id, parent_run_id, "llm", id(self))
            if start is None or start.run.task is None:
                return
            run = start.run
            params = _mapping(kwargs.get("invocation_params"))
            details = _mapping(metadata)
            model_class = _class_name(serialized) or "unknown"
            model_name = (
                _text(details.get("ls_model_name"))
                or _text(params.get("model"))
                or _text(params.get("model_name"))
            )
            mediated = _is_secure_model(serialized, params)
            run.resource = f"llm:{model_class}"
            run.attributes = {
                "llm_class": model_class,
                "model_name": model_name,
                "provider": _text(details.get("ls_provider")),
                "mediated": mediated,
                **_node(details),
            }
            if not mediated:
                _write_finding(run, run_id, _FINDING_MODEL, _FINDING_MODEL_DETAIL)
        except Exception:
            logger.warning(
                "audit callback failed on the start of model run %s", run_id, exc_info=True
            )

    # -- tools -----------------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Start tracking a tool run, and write a finding if agentlease does not guard it."""
        try:
            start = _tracker.start(run_id, parent_run_id, "tool", id(self))
            if start is None or start.run.task is None:
                return
            run = start.run
            name = _text(_mapping(serialized).get("name")) or _text(kwargs.get("name")) or "unknown"
            call_id = _text(kwargs.get("tool_call_id"))
            guarded = _mapping(metadata).get(GUARDED_METADATA_KEY) is True or _is_guarded_tool(
                name, call_id, inside_tool=start.inside_tool
            )
            run.resource = f"tool:{name}"
            run.attributes = {
                "tool": name,
                "call_id": call_id,
                "guarded": guarded,
                **_node(_mapping(metadata)),
            }
            # `inputs` leaves out injected arguments, such as the graph state.
            run.args_hash = stable_hash(inputs if inputs is not None else input_str)
            if not guarded:
                _write_finding(run, run_id, _FINDING_TOOL, _FINDING_TOOL_DETAIL)
        except Exception:
            logger.warning(
                "audit callback failed on the start of tool run %s", run_id, exc_info=True
            )

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Record a tool run with a hash of its output."""
        self._finish(run_id, "framework.tool", result=output)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Record a failed tool run."""
        self._finish(run_id, "framework.tool", error=error)

    # -- retrievers ------------------------------------------------------------------------

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Start tracking a retriever run."""
        try:
            start = _tracker.start(run_id, parent_run_id, "retrieve", id(self))
            if start is None or start.run.task is None:
                return
            run = start.run
            details = _mapping(metadata)
            name = (
                _text(kwargs.get("name"))
                or _class_name(serialized)
                or _text(details.get("ls_retriever_name"))
                or "retriever"
            )
            run.resource = f"retriever:{name}"
            run.attributes = {"retriever": name, **_node(details)}
            run.args_hash = stable_hash(query)
        except Exception:
            logger.warning(
                "audit callback failed on the start of retriever run %s", run_id, exc_info=True
            )

    def on_retriever_end(
        self, documents: Sequence[Document], *, run_id: UUID, **kwargs: Any
    ) -> None:
        """Record a retriever run with the number and data classes of its documents."""
        self._finish(run_id, "framework.retrieve", result=documents)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Record a failed retriever run."""
        self._finish(run_id, "framework.retrieve", error=error)

    # -- records ---------------------------------------------------------------------------

    def _finish(
        self,
        run_id: UUID,
        action: str,
        *,
        result: Any = None,
        error: BaseException | None = None,
    ) -> None:
        try:
            run = _tracker.finish(run_id, id(self))
            if run is not None:
                _write_end(run, run_id, action, result, error)
        except Exception:
            logger.warning("audit callback failed on the end of run %s", run_id, exc_info=True)


def _write_finding(run: _Run, run_id: UUID, finding: str, detail: str) -> None:
    assert run.task is not None
    run.task.audit(
        "finding",
        resource=run.resource,
        credential={"mode": "unmediated"},
        args_hash=run.args_hash,
        attributes={
            "finding": finding,
            "detail": detail,
            **run.attributes,
            **_run_ids(run, run_id),
        },
    )


def _write_end(
    run: _Run, run_id: UUID, action: str, result: Any, error: BaseException | None
) -> None:
    task = run.task
    assert task is not None
    attributes = dict(run.attributes)
    attributes["duration_ms"] = round((time.monotonic() - run.started) * 1000, 3)
    attributes.update(_run_ids(run, run_id))

    outcome = "ok"
    if error is not None and _is_graph_control(error):
        # The graph paused for input or handed control to its parent graph, which is not a
        # failure.
        attributes["interrupted"] = True
        error = None
    elif isinstance(error, PolicyDenied):
        outcome = "denied"
    elif error is not None:
        outcome = "error"

    usage: dict[str, int] | None = None
    result_hash: str | None = None
    if action == "framework.llm":
        attributes["stream"] = run.chunks > 0
        if run.chunks:
            attributes["chunks"] = run.chunks
        if run.first_chunk is not None:
            attributes["time_to_first_chunk_ms"] = round((run.first_chunk - run.started) * 1000, 3)
        if isinstance(result, LLMResult):
            usage = _usage(result)
    elif action == "framework.tool" and error is None:
        content = result
        if isinstance(result, ToolMessage):
            content = result.content
            attributes["status"] = result.status
            if result.status == "error":
                outcome = "error"
        result_hash = stable_hash(content)
    elif action == "framework.retrieve" and error is None:
        documents = _documents(result)
        attributes["documents"] = len(documents)
        attributes["data_classes"] = _labels(documents)

    task.audit(
        action,
        resource=run.resource,
        outcome=outcome,
        error=error,
        usage=usage,
        args_hash=run.args_hash,
        result_hash=result_hash,
        attributes=attributes,
    )


def _run_ids(run: _Run, run_id: UUID) -> dict[str, str | None]:
    parent = run.audited_parent
    return {"run_id": str(run_id), "parent_run_id": str(parent) if parent is not None else None}


# -- recognising agentlease's own components ------------------------------------------------


def _is_secure_model(serialized: Mapping[str, Any] | None, params: Mapping[str, Any]) -> bool:
    """Return whether a model run's callback data comes from a `SecureChatModel`.

    Subclasses keep the model type in the invocation params; the class path covers callers
    that pass no invocation params.
    """
    if params.get("_type") == _SECURE_LLM_TYPE:
        return True
    return _mapping(serialized).get("id") == _SECURE_MODEL_ID


def _is_guarded_tool(name: str, call_id: str | None, *, inside_tool: bool) -> bool:
    """Return whether the tool run starting now is guarded by agentlease, for unmarked tools.

    Tools built by `secure_tool` carry `GUARDED_METADATA_KEY` in their metadata, which the
    caller checks first; this covers the rest, such as tools guarded by the middleware.

    A tool built by `secure_tool` sets the model's tool call id, or None, in a context
    variable before LangChain starts the run, and guards the call inside the run.
    `AgentleaseMiddleware` starts the whole run inside its guarded call, so that guard's grant
    is current. A run nested in a guarded tool inherits both the variable and the grant, so
    there the id or the grant's audience must match this tool. A run whose parent LangChain
    does not know (because the outer tool passed its own input config on) looks outermost,
    but the outer guard's grant still gives the nesting away.
    """
    marker = _tool_call_id.get(_UNSET)
    try:
        grant: Grant | None = current_grant()
    except TaskError:
        grant = None

    if marker is not _UNSET:
        if call_id is not None and marker == call_id:
            return True
        if call_id is None and marker is None and grant is None and not inside_tool:
            return True
    if grant is None:
        return False
    if grant.audience == f"tool:{name}":
        return True
    # A grant with another audience: the middleware's guard with a custom audience, unless
    # the run is nested in another tool.
    return marker is _UNSET and not inside_tool


def _is_graph_control(error: BaseException) -> bool:
    return any(cls.__name__ == _GRAPH_CONTROL_ERROR for cls in type(error).__mro__)


# -- reading callback payloads --------------------------------------------------------------


def _mapping(value: object) -> Mapping[str, Any]:
    return cast("Mapping[str, Any]", value) if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    if isinstance(value, str) and value:
        return value[:_MAX_NAME_CHARS]
    return None


def _class_name(serialized: Mapping[str, Any] | None) -> str | None:
    """Return the class name LangChain put in a run's serialized form, if any."""
    details = _mapping(serialized)
    path = details.get("id")
    if isinstance(path, list) and path:
        return _text(cast("list[object]", path)[-1])
    return _text(details.get("name"))


def _node(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Return the LangGraph node a run belongs to, when LangGraph reports one."""
    node = _text(metadata.get("langgraph_node"))
    return {"node": node} if node is not None else {}


def _usage(result: LLMResult) -> dict[str, int] | None:
    input_tokens = output_tokens = 0
    found = False
    for generations in result.generations:
        for generation in generations:
            if not isinstance(generation, ChatGeneration):
                continue
            usage = getattr(generation.message, "usage_metadata", None)
            if isinstance(usage, Mapping):
                counts = cast("Mapping[str, Any]", usage)
                input_tokens += int(counts.get("input_tokens") or 0)
                output_tokens += int(counts.get("output_tokens") or 0)
                found = True
    if not found:
        # Text completion models report usage in `llm_output`, in the OpenAI format.
        token_usage = _mapping(_mapping(result.llm_output).get("token_usage"))
        input_tokens = int(token_usage.get("prompt_tokens") or 0)
        output_tokens = int(token_usage.get("completion_tokens") or 0)
        found = bool(token_usage)
    if not found:
        return None
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def _documents(result: object) -> list[Document]:
    if not isinstance(result, Sequence) or isinstance(result, str):
        return []
    return [item for item in cast("Sequence[object]", result) if isinstance(item, Document)]


def _labels(documents: Sequence[Document]) -> list[str]:
    """Return the data classes found in the documents' ``data_class`` metadata."""
    labels: set[str] = set()
    for document in documents:
        value = document.metadata.get("data_class")
        if value is None:
            continue
        label = str(value).strip().lower()
        labels.add(label if label in DATA_CLASSES else "unknown")
    return sorted(labels)


# -- registration ---------------------------------------------------------------------------

_handler: contextvars.ContextVar[AgentleaseCallbackHandler | None] = contextvars.ContextVar(
    "agentlease_langchain_callback_handler", default=None
)

# LangChain adds the handler in `_handler` to every callback manager it configures, unless
# the manager already has an `AgentleaseCallbackHandler`, such as one passed in `config`.
register_configure_hook(_handler, True, AgentleaseCallbackHandler)


class Instrumentation:
    """One `instrument()` call: the handler it made current, and how to undo it.

    Attributes:
        handler: The handler LangChain adds to runs started in this context.
    """

    def __init__(
        self,
        handler: AgentleaseCallbackHandler,
        token: contextvars.Token[AgentleaseCallbackHandler | None],
    ) -> None:
        self.handler = handler
        self._token: contextvars.Token[AgentleaseCallbackHandler | None] | None = token

    @property
    def active(self) -> bool:
        """Whether LangChain adds this registration's handler to runs in this context."""
        return _handler.get() is self.handler

    def uninstrument(self) -> None:
        """Restore the handler that was current before `instrument()`.

        Calling it again does nothing.
        """
        token = self._token
        if token is None:
            return
        self._token = None
        try:
            _handler.reset(token)
        except ValueError:
            # The call comes from another context than `instrument()` ran in, so only this
            # context stops adding the handler.
            if _handler.get() is self.handler:
                _handler.set(None)

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.uninstrument()

    def __repr__(self) -> str:
        return f"Instrumentation(handler={self.handler!r}, active={self.active})"


def instrument(handler: AgentleaseCallbackHandler | None = None) -> Instrumentation:
    """Add an `AgentleaseCallbackHandler` to every LangChain run started in this context.

    The registration is a context variable, so it covers the current context and the
    contexts copied from it: asyncio tasks created later, LangChain's executor threads, and
    ``contextvars.copy_context()``. Call it once at startup, before the event loop and
    worker threads start. A thread started with `threading.Thread` begins with an empty
    context, so it needs its own call, or the handler in ``config``.

    Calling it again keeps the handler in place unless `handler` is given. Each call is
    undone by its `Instrumentation.uninstrument()`, or by leaving its ``with`` block, which
    restores the state before the call.

    Args:
        handler: The handler to add; defaults to the one already current, or a new one.

    Returns:
        The registration.

    Example:
        >>> from agentlease_langchain import instrument
        >>> with instrument() as registration:
        ...     registration.active
        True
    """
    chosen = handler or _handler.get() or AgentleaseCallbackHandler()
    return Instrumentation(chosen, _handler.set(chosen))
