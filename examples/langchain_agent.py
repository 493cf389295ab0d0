"""A LangChain agent whose every model and tool call runs through agentlease.

The agent answers a support ticket with two tools. Its task starts as ``internal`` data, so
the first model call takes the cheap ``fast`` route. The customer lookup returns data labelled
``confidential``, which raises the task's data class, and from then on the starter policy only
lets calls go to the ``secure`` route, which is cleared for confidential data. Every call
carries a grant scoped to the task; all of them are revoked when the task ends.

Run it offline (a scripted model server starts on 127.0.0.1)::

    uv run examples/langchain_agent.py

Or against any OpenAI-compatible endpoint, which then plays both routes::

    AGENTLEASE_DEMO_BASE_URL=https://api.example.com/v1 \\
    AGENTLEASE_DEMO_MODEL=some-model \\
    AGENTLEASE_DEMO_API_KEY_ENV=EXAMPLE_API_KEY \\
    uv run examples/langchain_agent.py

With ``AGENTLEASE_DEMO_API_KEY_ENV`` the routes use the named variable as a static API key (the
audited exception path, which the demo's policy allows explicitly); without it they send
agentlease grants, for a gateway that verifies them.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path

from langchain.agents import create_agent
from langchain_core.tools import tool

import agentlease
from agentlease.audit import AuditLog, AuditRecord, JsonlAuditSink, read_log
from agentlease.policy import CedarEngine, starter_policies
from agentlease.testing import ModelServer, Reply
from agentlease_langchain import SecureChatModel, secure_tool

AUDIT_PATH = Path(".agentlease/demo-audit.jsonl")
QUESTION = "Customer C-1042 asks which plan they are on and what the renewal costs in USD."

# The demo's only addition to the starter policies: the static-key exception path, allowed
# explicitly for the route that is cleared for confidential data.
STATIC_KEY_EXCEPTION = """
@id("demo-static-key-secure-route")
@reason("the demo allows the secure route's static API key explicitly")
permit (principal, action == Action::"invoke_model", resource == Route::"secure")
when { resource.credential == "api_key" };
"""


@tool
def lookup_customer(customer_id: str) -> str:
    """Look up a customer's plan and renewal in the CRM."""
    # A real tool would call its service with the grant minted for it alone:
    #   httpx.get(url, headers={"Authorization": f"Bearer {agentlease.current_grant().token}"})
    grant = agentlease.current_grant()
    assert grant.audience == "tool:lookup_customer"
    return f"{customer_id}: Ada Lovelace, plan Team Plus, renews 2027-01-31 at EUR 1,200 a year."


@tool
def convert_currency(amount: float, currency: str) -> str:
    """Convert an amount in EUR to another currency at today's rate."""
    rates = {"USD": 1.08, "GBP": 0.85, "CHF": 0.94}
    rate = rates.get(currency.upper())
    if rate is None:
        return f"No rate for {currency}."
    return f"EUR {amount:,.2f} is {currency.upper()} {amount * rate:,.2f}."


def routes(
    fast_url: str, secure_url: str, fast_model: str, secure_model: str, key_env: str | None
) -> list[agentlease.Route]:
    """Declare the two routes: a cheap one for internal data, one cleared for confidential."""
    credential = "api_key" if key_env else "grant"
    return [
        agentlease.Route(
            name="fast",
            base_url=fast_url,
            model=fast_model,
            jurisdiction="us",
            clearance="internal",
            credential=credential,
            api_key_env=key_env,
            groups=("default",),
            priority=10,
        ),
        agentlease.Route(
            name="secure",
            base_url=secure_url,
            model=secure_model,
            jurisdiction="eu",
            clearance="confidential",
            credential=credential,
            api_key_env=key_env,
            groups=("default",),
            priority=20,
        ),
    ]


def script(server: ModelServer) -> None:
    """Script the conversation a capable model would have, one reply per route call."""
    server.script(
        Reply.tool_call("lookup_customer", {"customer_id": "C-1042"}),
        prefix="/fast",
    )
    server.script(
        Reply.tool_call("convert_currency", {"amount": 1200, "currency": "USD"}),
        Reply.text(
            "Customer C-1042 (Ada Lovelace) is on the Team Plus plan. It renews on "
            "2027-01-31 for EUR 1,200 a year, which is about USD 1,296.00."
        ),
        prefix="/secure",
    )


def report(task: agentlease.Task, answer: str) -> None:
    records = [r for r in read_log(AUDIT_PATH) if r.session_id == task.id]
    print(f"\nAnswer:\n  {answer}\n")

    print("Routing and policy decisions:")
    for record in records:
        line = describe(record)
        if line:
            print(f"  {line}")

    print(f"\nGrants: {len(task.grants)} minted, {len(task.revoked)} revoked when the task ended")
    for grant in task.grants:
        state = "revoked" if grant in task.revoked else "active"
        print(f"  {grant.audience:<28} jti={grant.jti[:12]}…  {state}")

    print(f"\nAudit log: {AUDIT_PATH}  (session {task.id})")
    print(f"  uv run agentlease audit show {AUDIT_PATH} --session {task.id}")
    print(f"  uv run agentlease audit verify {AUDIT_PATH}")


def describe(record: AuditRecord) -> str | None:
    decision = record.decision
    policies = ", ".join(decision.policy_ids) if decision else ""
    if record.action == "policy.decision" and decision is not None:
        return f"denied  {record.resource:<24} [{policies}] {decision.reason}"
    if record.action == "model.call" and record.outcome == "ok":
        usage = record.usage
        tokens = f"{usage.input_tokens}+{usage.output_tokens} tokens" if usage else ""
        return f"allowed {record.resource:<24} [{policies}] model call, {tokens}"
    if record.action == "tool.call":
        verdict = "allowed" if record.outcome != "denied" else "denied "
        return f"{verdict} {record.resource:<24} [{policies}] tool call"
    if record.action == "task.data_class_raised":
        moved = f"{record.attributes.get('from')} -> {record.attributes.get('to')}"
        return f"raised  data class {moved} by {record.resource}"
    if record.action == "route.fallback":
        return f"fallback {record.attributes.get('from')} -> {record.attributes.get('to')}"
    return None


def main() -> int:
    base_url = os.environ.get("AGENTLEASE_DEMO_BASE_URL")
    key_env = os.environ.get("AGENTLEASE_DEMO_API_KEY_ENV")

    with ExitStack() as stack:
        if base_url is None:
            server = stack.enter_context(ModelServer())
            script(server)
            print(
                f"No AGENTLEASE_DEMO_BASE_URL set: using the scripted model server at {server.url}"
            )
            root = server.url.removesuffix("/v1")
            declared = routes(
                f"{root}/fast/v1", f"{root}/secure/v1", "fast-model", "secure-model", None
            )
        else:
            model = os.environ.get("AGENTLEASE_DEMO_MODEL", "gpt-4o-mini")
            declared = routes(base_url, base_url, model, model, key_env)

        AUDIT_PATH.parent.mkdir(parents=True, exist_ok=True)
        runtime = agentlease.Runtime(
            routes=declared,
            policy=CedarEngine(starter_policies() + STATIC_KEY_EXCEPTION),
            audit=AuditLog(JsonlAuditSink(AUDIT_PATH)),
        )
        stack.callback(runtime.close)

        model_node = SecureChatModel(model="default", runtime=runtime)
        tools = [
            secure_tool(lookup_customer, data_class="confidential"),
            secure_tool(convert_currency),
        ]
        agent = create_agent(model_node, tools, system_prompt="You answer support tickets.")

        with agentlease.task(
            "support-reply",
            purpose="answer a customer ticket",
            data_class="internal",
            runtime=runtime,
        ) as task:
            result = agent.invoke({"messages": [("user", QUESTION)]})

        answer = str(result["messages"][-1].content)
        report(task, answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
