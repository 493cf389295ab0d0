"""Guarded LlamaIndex tools: metadata kept, Context injection kept, policy, grants and audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.bridge.pydantic import Field
from llama_index.core.tools import FunctionTool
from llama_index.core.tools.types import BaseTool, ToolMetadata, ToolOutput
from llamaindex_context_tools import remember

import agentlease
from agentlease.audit import AuditRecord
from agentlease_llamaindex import (
    SecureFunctionTool,
    SecureTool,
    secure_function_tool,
    secure_tool,
)

Actions = Callable[[str], list[AuditRecord]]


def lookup_customer(customer_id: str) -> str:
    """Look up a customer record."""
    return f"record of {customer_id}"


async def alookup_customer(customer_id: str) -> str:
    """Look up a customer record asynchronously."""
    return f"async record of {customer_id}"


def delete_records(table: str) -> str:
    """Delete every record of a table."""
    raise AssertionError("a denied tool must not run")


class EchoTool(BaseTool):
    """A plain BaseTool that is not a FunctionTool."""

    @property
    def metadata(self) -> ToolMetadata:
        return ToolMetadata(name="echo", description="Echo the input.")

    def __call__(self, input: Any) -> ToolOutput:
        return ToolOutput(
            content=f"echo {input}", tool_name="echo", raw_input={"input": input}, raw_output=input
        )


# -- shape ---------------------------------------------------------------------------------


def test_guarded_tool_is_function_tool() -> None:
    guarded = secure_tool(FunctionTool.from_defaults(lookup_customer))

    assert isinstance(guarded, FunctionTool)
    assert isinstance(guarded, SecureFunctionTool)


def test_guarded_tool_keeps_metadata() -> None:
    original = FunctionTool.from_defaults(lookup_customer, return_direct=True)

    guarded = secure_function_tool(original)

    assert guarded.metadata is original.metadata
    assert guarded.metadata.get_parameters_dict() == original.metadata.get_parameters_dict()
    assert guarded.metadata.return_direct


def test_plain_function_becomes_guarded_tool() -> None:
    guarded = secure_tool(lookup_customer)

    assert isinstance(guarded, SecureFunctionTool)
    assert guarded.metadata.name == "lookup_customer"
    assert guarded.guard.audience == "tool:lookup_customer"


def test_async_function_becomes_guarded_tool() -> None:
    guarded = secure_function_tool(alookup_customer)

    assert guarded.metadata.name == "alookup_customer"


def test_context_parameter_kept() -> None:
    guarded = secure_function_tool(FunctionTool.from_defaults(async_fn=remember))

    assert guarded.requires_context
    assert guarded.ctx_param_name == "ctx"
    assert "ctx" not in guarded.metadata.get_parameters_dict()["properties"]


def test_guarding_twice_returns_same_tool() -> None:
    guarded = secure_tool(lookup_customer)

    assert secure_tool(guarded) is guarded
    assert secure_function_tool(guarded) is guarded


def test_other_tool_gets_wrapper() -> None:
    guarded = secure_tool(EchoTool())

    assert isinstance(guarded, SecureTool)
    assert guarded.metadata.name == "echo"


# -- allowed calls -------------------------------------------------------------------------


def test_call_runs_tool(runtime: agentlease.Runtime) -> None:
    guarded = secure_tool(lookup_customer)

    with agentlease.task("support"):
        output = guarded.call(customer_id="c-1")

    assert output.content == "record of c-1"
    assert not output.is_error


async def test_acall_runs_sync_tool(runtime: agentlease.Runtime) -> None:
    guarded = secure_tool(lookup_customer)

    async with agentlease.task("support"):
        output = await guarded.acall(customer_id="c-2")

    assert output.content == "record of c-2"


async def test_acall_runs_async_tool(runtime: agentlease.Runtime) -> None:
    guarded = secure_tool(alookup_customer)

    async with agentlease.task("support"):
        output = await guarded.acall(customer_id="c-3")

    assert output.content == "async record of c-3"


def test_call_runs_async_tool(runtime: agentlease.Runtime) -> None:
    guarded = secure_tool(alookup_customer)

    with agentlease.task("support"):
        output = guarded.call(customer_id="c-4")

    assert output.content == "async record of c-4"


def test_call_audited_with_grant(runtime: agentlease.Runtime, actions: Actions) -> None:
    guarded = secure_tool(lookup_customer)

    with agentlease.task("support"):
        guarded.call(customer_id="c-1")

    (record,) = actions("tool.call")
    assert record.resource == "tool:lookup_customer"
    assert record.outcome == "ok"
    assert record.credential is not None
    assert record.credential.aud == "tool:lookup_customer"
    assert record.args_hash is not None


def test_tool_reads_current_grant(runtime: agentlease.Runtime) -> None:
    seen: list[str] = []

    def whoami() -> str:
        """Report the grant audience."""
        seen.append(agentlease.current_grant().audience)
        return "ok"

    with agentlease.task("support"):
        secure_tool(whoami).call()

    assert seen == ["tool:whoami"]


async def test_sync_tool_reads_grant_under_acall(runtime: agentlease.Runtime) -> None:
    seen: list[str] = []

    def whoami() -> str:
        """Report the grant audience."""
        seen.append(agentlease.current_grant().audience)
        return "ok"

    async with agentlease.task("support"):
        await secure_tool(whoami).acall()

    assert seen == ["tool:whoami"]


def test_call_without_task_uses_implicit_task(
    runtime: agentlease.Runtime, actions: Actions
) -> None:
    output = secure_tool(lookup_customer).call(customer_id="c-9")

    assert output.content == "record of c-9"
    assert actions("tool.call")[0].task_name == "tool lookup_customer"


def test_data_class_raised_after_call(runtime: agentlease.Runtime) -> None:
    guarded = secure_tool(lookup_customer, data_class="confidential")

    with agentlease.task("support") as task:
        guarded.call(customer_id="c-1")

        assert task.data_class == "confidential"


def test_partial_params_kept(runtime: agentlease.Runtime) -> None:
    original = FunctionTool.from_defaults(lookup_customer, partial_params={"customer_id": "fixed"})

    with agentlease.task("support"):
        output = secure_tool(original).call()

    assert output.content == "record of fixed"


def test_field_default_applied(runtime: agentlease.Runtime) -> None:
    def page(size: int = Field(default=20, description="Page size.")) -> str:
        """Return a page."""
        return f"page of {size}"

    with agentlease.task("support"):
        output = secure_tool(page).call()

    assert output.content == "page of 20"


def test_arguments_named_like_guard_options(runtime: agentlease.Runtime) -> None:
    def record(arguments: str, call_id: str) -> str:
        """Record a call."""
        return f"{call_id}:{arguments}"

    with agentlease.task("support"):
        output = secure_tool(record).call(arguments="x", call_id="y")

    assert output.content == "y:x"


def test_callback_kept(runtime: agentlease.Runtime) -> None:
    original = FunctionTool.from_defaults(lookup_customer, callback=lambda result: f"seen {result}")

    with agentlease.task("support"):
        output = secure_tool(original).call(customer_id="c-1")

    assert output.content == "seen record of c-1"


def test_tool_error_propagates(runtime: agentlease.Runtime, actions: Actions) -> None:
    def broken() -> str:
        """Fail."""
        raise RuntimeError("backend down")

    with agentlease.task("support"), pytest.raises(RuntimeError, match="backend down"):
        secure_tool(broken).call()

    assert actions("tool.call")[0].outcome == "error"


def test_wrapped_other_tool_runs(runtime: agentlease.Runtime, actions: Actions) -> None:
    with agentlease.task("support"):
        output = secure_tool(EchoTool()).call("hi")

    assert output.content == "echo hi"
    assert actions("tool.call")[0].resource == "tool:echo"


async def test_wrapped_other_tool_runs_async(runtime: agentlease.Runtime) -> None:
    async with agentlease.task("support"):
        output = await secure_tool(EchoTool()).acall("hi")

    assert output.content == "echo hi"


# -- denials -------------------------------------------------------------------------------


def test_denied_call_returns_error_output(runtime: agentlease.Runtime) -> None:
    guarded = secure_tool(delete_records, risk="high")

    with agentlease.task("cleanup"):
        output = guarded.call(table="users")

    assert output.is_error
    assert "policy denied" in output.content
    assert "tool-high-risk-unverified" in output.content
    assert "high-risk tools need a verified workload identity" in output.content
    assert isinstance(output.exception, agentlease.PolicyDenied)


async def test_denied_acall_returns_error_output(runtime: agentlease.Runtime) -> None:
    guarded = secure_tool(delete_records, risk="high")

    async with agentlease.task("cleanup"):
        output = await guarded.acall(table="users")

    assert output.is_error
    assert "tool-high-risk-unverified" in output.content


def test_denied_call_audited(runtime: agentlease.Runtime, actions: Actions) -> None:
    with agentlease.task("cleanup"):
        secure_tool(delete_records, risk="high").call(table="users")

    (record,) = actions("tool.call")
    assert record.outcome == "denied"
    assert record.decision is not None
    assert record.decision.policy_ids == ("tool-high-risk-unverified",)
    assert actions("grant.mint") == []


def test_tool_above_clearance_denied(runtime: agentlease.Runtime) -> None:
    guarded = secure_tool(lookup_customer, clearance="internal")

    with agentlease.task("support", data_class="confidential"):
        output = guarded.call(customer_id="c-1")

    assert output.is_error
    assert "tool-data-class-clearance" in output.content


def test_denied_other_tool_returns_error_output(runtime: agentlease.Runtime) -> None:
    with agentlease.task("cleanup"):
        output = secure_tool(EchoTool(), risk="high").call("hi")

    assert output.is_error
    assert output.tool_name == "echo"
