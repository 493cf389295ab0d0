"""A LlamaIndex agent whose every model call, tool call and retrieval runs through agentlease.

A `FunctionAgent` replies to a support ticket. It searches the support knowledge base,
converts a price and tries to email a quote. Its task starts as ``internal`` data, so the first
model call takes the cheap ``fast`` route. The search returns an account note labelled
``confidential``, which raises the task's data class, and from then on the starter policy only
lets calls go to the ``secure`` route, which is cleared for confidential data. The email tool
is high risk, and the starter policy denies it to the unverified workload identity of a local
run. The agent receives the denial as a tool error and replies without the tool. Every call
carries a grant scoped to the task, and the task revokes all of them when it ends.

Run it offline (a scripted model server starts on 127.0.0.1)::

    uv run examples/llamaindex_agent.py

Or against any OpenAI-compatible endpoint, which then plays both routes::

    AGENTLEASE_DEMO_BASE_URL=https://api.example.com/v1 \\
    AGENTLEASE_DEMO_MODEL=some-model \\
    AGENTLEASE_DEMO_API_KEY_ENV=EXAMPLE_API_KEY \\
    uv run examples/llamaindex_agent.py

With ``AGENTLEASE_DEMO_API_KEY_ENV`` the routes use the named variable as a static API key (the
audited exception path, which the demo's policy allows explicitly); without it they send
agentlease grants, for a gateway that verifies them.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import textwrap
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from llama_index.core import Document
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle
from llama_index.core.tools import RetrieverTool

import agentlease
from agentlease.audit import AuditLog, AuditRecord, JsonlAuditSink, read_log
from agentlease.policy import CedarEngine, starter_policies
from agentlease.testing import ModelServer, Reply
from agentlease_llamaindex import DataClassRetriever, SecureLLM, instrument, secure_tool

AUDIT_PATH = Path(".agentlease/demo-audit.jsonl")
QUESTION = (
    "Customer C-1042 asks which plan they are on and what the renewal costs in USD. "
    "Email them the quote."
)
SYSTEM_PROMPT = (
    "You answer support tickets. Search the knowledge base for the customer before you answer."
)

# The demo adds one policy to the starter policies. It allows the static-key exception path
# explicitly for the route that is cleared for confidential data.
STATIC_KEY_EXCEPTION = """
@id("demo-static-key-secure-route")
@reason("the demo allows the secure route's static API key explicitly")
permit (principal, action == Action::"invoke_model", resource == Route::"secure")
when { resource.credential == "api_key" };
"""

# The knowledge base. Each document carries its data class in the `data_class` metadata key,
# which `DataClassRetriever` reads.
DOCUMENTS = [
    Document(
        id_="plan-catalogue",
        text="Plan catalogue: Starter costs EUR 300 a year, Team Plus EUR 1,200 a year.",
        metadata={"data_class": "public"},
    ),
    Document(
        id_="renewal-policy",
        text="Renewal policy: every plan renews yearly on its contract date, billed in EUR.",
        metadata={"data_class": "internal"},
    ),
    Document(
        id_="account-c-1042",
        text=(
            "Account note C-1042: Ada Lovelace, plan Team Plus, renews 2027-01-31 at "
            "EUR 1,200 a year. Billing contact ada@example.com."
        ),
        metadata={"data_class": "confidential"},
    ),
]


class KeywordRetriever(BaseRetriever):
    """Rank nodes by how many words of the query they contain, with no embedding model."""

    def __init__(self, nodes: Sequence[BaseNode], *, top_k: int = 2) -> None:
        super().__init__()
        self._nodes = list(nodes)
        self._top_k = top_k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        query = words(query_bundle.query_str)
        matches = [
            NodeWithScore(node=node, score=float(len(query & words(node.get_content()))))
            for node in self._nodes
        ]
        matches = [match for match in matches if match.score]
        matches.sort(key=lambda match: match.score or 0.0, reverse=True)
        return matches[: self._top_k]


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9][a-z0-9-]+", text.lower()))


def convert_currency(amount: float, currency: str) -> str:
    """Convert an amount in EUR to another currency at today's rate."""
    rates = {"USD": 1.08, "GBP": 0.85, "CHF": 0.94}
    rate = rates.get(currency.upper())
    if rate is None:
        return f"No rate for {currency}."
    return f"EUR {amount:,.2f} is {currency.upper()} {amount * rate:,.2f}."


def send_quote_email(customer_id: str, body: str) -> str:
    """Email a price quote to the customer's billing contact."""
    # The starter policy denies high-risk tools to an unverified workload identity, which is
    # what a local run has, so this function does not run in the demo.
    return f"Sent the quote to the billing contact of {customer_id}."


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
        Reply.tool_call("search_knowledge_base", {"input": "C-1042 plan renewal"}),
        prefix="/fast",
    )
    server.script(
        Reply.tool_calls(
            [
                ("convert_currency", {"amount": 1200, "currency": "USD"}),
                ("send_quote_email", {"customer_id": "C-1042", "body": "USD 1,296.00"}),
            ]
        ),
        Reply.text(
            "Customer C-1042 (Ada Lovelace) is on the Team Plus plan. It renews on "
            "2027-01-31 for EUR 1,200 a year, which is about USD 1,296.00. I could not "
            "email the quote because the policy denied the email tool."
        ),
        prefix="/secure",
    )


def build_agent(runtime: agentlease.Runtime) -> FunctionAgent:
    """Build the agent: a SecureLLM, a guarded retrieval tool and two guarded tools."""
    search = RetrieverTool.from_defaults(
        # This tool's guard sets no `data_class`, because the labels of the documents it
        # returns decide how far the task's data class rises.
        retriever=DataClassRetriever(KeywordRetriever(DOCUMENTS)),
        name="search_knowledge_base",
        description="Search the support knowledge base: plans, policies and account notes.",
    )
    tools = [
        secure_tool(search),
        secure_tool(convert_currency),
        secure_tool(send_quote_email, risk="high"),
    ]
    return FunctionAgent(
        tools=tools,
        llm=SecureLLM("default", runtime=runtime),
        system_prompt=SYSTEM_PROMPT,
    )


async def run_agent(agent: FunctionAgent) -> tuple[str, list[str]]:
    """Run the agent on the ticket and return its reply and the tool errors it received."""
    handler = agent.run(user_msg=QUESTION)
    tool_errors: list[str] = []
    async for event in handler.stream_events():
        if isinstance(event, ToolCallResult) and event.tool_output.is_error:
            tool_errors.append(event.tool_output.content)
    result = await handler
    return str(result.response.content), tool_errors


def report(task: agentlease.Task, answer: str, tool_errors: list[str]) -> None:
    records = [r for r in read_log(AUDIT_PATH) if r.session_id == task.id]
    print(f"\nAnswer:\n{textwrap.indent(answer.strip(), '  ')}\n")

    print("Routing and policy decisions:")
    for record in records:
        line = describe(record)
        if line:
            print(f"  {line}")

    print("\nTool errors the agent received:")
    for error in tool_errors or ["none"]:
        print(f"  {error}")

    framework = [r for r in records if r.action.startswith("framework.")]
    findings = [r for r in records if r.action == "finding"]
    print(
        f"\nLlamaIndex instrumentation: {len(framework)} framework records, "
        f"{len(findings)} bypass findings"
    )

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
        return f"denied  {record.resource:<28} [{policies}] {decision.reason}"
    if record.action == "model.call" and record.outcome == "ok":
        usage = record.usage
        tokens = f"{usage.input_tokens}+{usage.output_tokens} tokens" if usage else ""
        return f"allowed {record.resource:<28} [{policies}] model call, {tokens}"
    if record.action == "tool.call" and record.outcome == "denied" and decision is not None:
        return f"denied  {record.resource:<28} [{policies}] {decision.reason}"
    if record.action == "tool.call":
        return f"allowed {record.resource:<28} [{policies}] tool call"
    if record.action == "task.data_class_raised":
        moved = f"{record.attributes.get('from')} -> {record.attributes.get('to')}"
        return f"raised  data class {moved} by {record.resource}"
    if record.action == "route.fallback":
        return f"fallback {record.attributes.get('from')} -> {record.attributes.get('to')}"
    return None


async def main() -> int:
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
        # Adds LlamaIndex's own view of the run (agent, LLM, tool and retrieval calls) to the
        # task's audit session, and a finding for any LLM call that bypasses SecureLLM.
        stack.enter_context(instrument())

        agent = build_agent(runtime)
        async with agentlease.task(
            "support-reply",
            purpose="answer a customer ticket",
            data_class="internal",
            runtime=runtime,
        ) as task:
            answer, tool_errors = await run_agent(agent)

        report(task, answer, tool_errors)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
