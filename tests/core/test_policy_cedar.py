"""Tests of the Cedar policy engine, the shipped starter policies and the decision cache."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from agentlease.errors import ConfigurationError, PolicyLoadError
from agentlease.policy import (
    AccessRequest,
    CachingPolicyEngine,
    CedarEngine,
    Decision,
    Resource,
    Subject,
    shipped_schema,
    starter_policies,
)
from agentlease.routing import Route

STARTER_IDS = (
    "model-task-credential",
    "model-static-key-low-data",
    "data-class-clearance",
    "jurisdiction-match",
    "tool-default",
    "tool-high-risk-unverified",
    "tool-data-class-clearance",
)

PERMIT_ALL = '@id("all") @reason("everything is allowed") permit(principal, action, resource);\n'


@pytest.fixture(scope="module")
def engine() -> CedarEngine:
    return CedarEngine()


def agent(*, verified: bool = True) -> Subject:
    return Subject(
        "spiffe://example.org/agent",
        properties={"verified": verified, "issuer": "example.org", "trust_domain": "example.org"},
    )


def context(data_class: str = "internal", **overrides: Any) -> dict[str, Any]:
    levels = {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}
    values: dict[str, Any] = {
        "task": "summarise",
        "purpose": "weekly report",
        "data_class": data_class,
        "data_level": levels[data_class],
        "jurisdiction": None,
        "on_behalf_of": None,
        "agent_state": None,
        "depth": 0,
    }
    values.update(overrides)
    return values


def route(name: str = "fast", **options: Any) -> Route:
    if options.get("credential") == "api_key":
        options.setdefault("api_key_env", "FAST_API_KEY")
    return Route(name=name, base_url="http://127.0.0.1:9/v1", model="scripted-model", **options)


def model_request(
    target: Route,
    *,
    data_class: str = "internal",
    subject: Subject | None = None,
    jurisdiction: str | None = None,
) -> AccessRequest:
    return AccessRequest(
        subject=subject or agent(),
        action="invoke_model",
        resource=Resource.for_route(target),
        context=context(data_class, jurisdiction=jurisdiction),
    )


def tool_request(
    tool: Resource, *, data_class: str = "internal", verified: bool = True
) -> AccessRequest:
    return AccessRequest(
        subject=agent(verified=verified),
        action="call_tool",
        resource=tool,
        context=context(data_class),
    )


def decide(engine: CedarEngine, request: AccessRequest) -> Decision:
    [decision] = engine.evaluate([request])
    return decision


# ---- Starter policies ----------------------------------------------------------------------


def test_starter_policy_ids(engine: CedarEngine) -> None:
    assert engine.policy_ids == STARTER_IDS


def test_starter_allows_grant_route(engine: CedarEngine) -> None:
    decision = decide(engine, model_request(route(credential="grant")))

    assert decision.allowed
    assert decision.policy_ids == ("model-task-credential",)
    assert decision.reason == "the route is reached with a short-lived credential bound to the task"
    assert decision.errors == ()


def test_starter_allows_exchange_route(engine: CedarEngine) -> None:
    decision = decide(engine, model_request(route(credential="exchange")))

    assert decision.allowed
    assert decision.policy_ids == ("model-task-credential",)


def test_starter_grant_lifetime_obligation(engine: CedarEngine) -> None:
    decision = decide(engine, model_request(route(credential="grant")))

    assert decision.obligations == {"grant_lifetime": "300"}


def test_starter_allows_api_key_internal_data(engine: CedarEngine) -> None:
    target = route(credential="api_key", clearance="confidential")

    decision = decide(engine, model_request(target, data_class="internal"))

    assert decision.allowed
    assert decision.policy_ids == ("model-static-key-low-data",)


def test_starter_denies_api_key_confidential_data(engine: CedarEngine) -> None:
    target = route("keyed", credential="api_key", clearance="confidential")

    decision = decide(engine, model_request(target, data_class="confidential"))

    assert not decision.allowed
    assert decision.policy_ids == ()
    assert decision.reason == 'no policy permits invoke_model on Route::"keyed"'


def test_starter_denies_route_below_data_class(engine: CedarEngine) -> None:
    target = route(credential="grant", clearance="internal")

    decision = decide(engine, model_request(target, data_class="confidential"))

    assert not decision.allowed
    assert decision.policy_ids == ("data-class-clearance",)
    assert decision.reason == "the task's data class is above the route's clearance"
    assert decision.obligations == {}


def test_starter_allows_low_risk_tool(engine: CedarEngine) -> None:
    tool = Resource.for_tool("search", risk="low")

    decision = decide(engine, tool_request(tool, verified=False))

    assert decision.allowed
    assert decision.policy_ids == ("tool-default",)
    assert decision.obligations == {"grant_lifetime": "300"}


def test_starter_allows_high_risk_verified_agent(engine: CedarEngine) -> None:
    tool = Resource.for_tool("transfer", risk="high")

    decision = decide(engine, tool_request(tool, verified=True))

    assert decision.allowed


def test_starter_denies_high_risk_unverified_agent(engine: CedarEngine) -> None:
    tool = Resource.for_tool("transfer", risk="high")

    decision = decide(engine, tool_request(tool, verified=False))

    assert not decision.allowed
    assert decision.policy_ids == ("tool-high-risk-unverified",)
    assert decision.reason == "high-risk tools need a verified workload identity"


def test_starter_denies_tool_below_data_class(engine: CedarEngine) -> None:
    tool = Resource.for_tool("search", clearance="public")

    decision = decide(engine, tool_request(tool, data_class="internal"))

    assert not decision.allowed
    assert decision.policy_ids == ("tool-data-class-clearance",)


def test_deny_lists_forbids_in_file_order(engine: CedarEngine) -> None:
    tool = Resource.for_tool("transfer", risk="high", clearance="public")

    decision = decide(engine, tool_request(tool, data_class="internal", verified=False))

    assert decision.policy_ids == ("tool-high-risk-unverified", "tool-data-class-clearance")
    assert decision.reason == (
        "high-risk tools need a verified workload identity; "
        "the task's data class is above the tool's clearance"
    )


def test_undeclared_route_attribute_is_dropped(engine: CedarEngine) -> None:
    target = route(attributes={"team": "search", "cost_centre": object()})

    decision = decide(engine, model_request(target))

    assert decision.allowed
    assert decision.errors == ()


def test_starter_text_is_the_default(engine: CedarEngine) -> None:
    explicit = CedarEngine(starter_policies(), schema=shipped_schema())

    assert explicit.policy_ids == engine.policy_ids


# ---- Batches -------------------------------------------------------------------------------


def test_batch_keeps_request_order(engine: CedarEngine) -> None:
    requests = [
        model_request(route("cleared", clearance="confidential"), data_class="confidential"),
        model_request(route("public-only", clearance="public"), data_class="confidential"),
        tool_request(Resource.for_tool("search")),
        tool_request(Resource.for_tool("transfer", risk="high"), verified=False),
    ]

    decisions = engine.evaluate(requests)

    assert [d.allowed for d in decisions] == [True, False, True, False]
    assert [d.policy_ids for d in decisions] == [
        ("model-task-credential",),
        ("data-class-clearance",),
        ("tool-default",),
        ("tool-high-risk-unverified",),
    ]


def test_batch_isolates_invalid_properties(engine: CedarEngine) -> None:
    broken = Resource("Tool", "broken", {"risk": 3, "clearance": 1, "clearance_name": "internal"})
    requests = [
        tool_request(Resource.for_tool("search")),
        tool_request(broken),
        model_request(route()),
    ]

    decisions = engine.evaluate(requests)

    assert [d.allowed for d in decisions] == [True, False, True]
    assert "Tool::\"broken\" attribute 'risk' must be a string" in decisions[1].errors[0]


def test_empty_batch_returns_no_decisions(engine: CedarEngine) -> None:
    assert engine.evaluate([]) == []


def test_non_request_item_raises_type_error(engine: CedarEngine) -> None:
    with pytest.raises(TypeError, match="AccessRequest"):
        engine.evaluate(["invoke_model"])  # type: ignore[list-item]


# ---- Failing closed ------------------------------------------------------------------------


def test_forbid_that_errors_still_denies() -> None:
    # Cedar skips a forbid whose condition fails (here an integer overflow) and would
    # allow the request on the permit alone.
    policies = PERMIT_ALL + (
        '@id("overflowing") @reason("never reached")\n'
        "forbid(principal, action, resource) when { context.depth + 9223372036854775807 > 0 };\n"
    )
    engine = CedarEngine(policies)
    request = AccessRequest(agent(), "call_tool", Resource.for_tool("search"), context(depth=1))

    decision = decide(engine, request)

    assert not decision.allowed
    assert decision.reason.startswith("denied because policy evaluation failed")
    assert any("`overflowing`" in error for error in decision.errors)


def test_missing_context_attribute_denies(engine: CedarEngine) -> None:
    values = context()
    del values["depth"]
    request = AccessRequest(agent(), "call_tool", Resource.for_tool("search"), values)

    decision = decide(engine, request)

    assert not decision.allowed
    assert decision.errors == (
        "context of call_tool lacks the attribute 'depth' that the schema requires; set it.",
    )


def test_missing_entity_attribute_denies(engine: CedarEngine) -> None:
    tool = Resource("Tool", "bare", {"risk": "low"})

    decision = decide(engine, tool_request(tool))

    assert not decision.allowed
    assert "lacks the attribute 'clearance'" in decision.errors[0]


def test_bool_for_long_attribute_denies(engine: CedarEngine) -> None:
    request = AccessRequest(
        agent(), "call_tool", Resource.for_tool("search"), context(data_level=True)
    )

    decision = decide(engine, request)

    assert not decision.allowed
    assert "'data_level' must be an integer but has type bool" in decision.errors[0]


def test_out_of_range_integer_denies(engine: CedarEngine) -> None:
    request = AccessRequest(agent(), "call_tool", Resource.for_tool("search"), context(depth=2**64))

    decision = decide(engine, request)

    assert not decision.allowed
    assert "outside Cedar's 64-bit integer range" in decision.errors[0]


def test_unknown_action_denies(engine: CedarEngine) -> None:
    request = AccessRequest(agent(), "delete_all", Resource.for_tool("search"), context())

    decision = decide(engine, request)

    assert not decision.allowed
    assert 'Action::"delete_all"' in decision.errors[0]


def test_wrong_resource_type_denies(engine: CedarEngine) -> None:
    request = AccessRequest(agent(), "invoke_model", Resource.for_tool("search"), context())

    decision = decide(engine, request)

    assert not decision.allowed
    assert decision.errors


def test_cedarpy_failure_denies_whole_batch(
    engine: CedarEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> list[object]:
        raise ValueError("engine exploded")

    # Patched through the engine module, the only one that imports cedarpy.
    monkeypatch.setattr("agentlease.policy.cedar.cedarpy.is_authorized_batch", fail)
    requests = [model_request(route()), tool_request(Resource.for_tool("search"))]

    decisions = engine.evaluate(requests)

    assert [d.allowed for d in decisions] == [False, False]
    assert decisions[0].errors == ("the Cedar engine raised ValueError: engine exploded",)


def test_none_context_value_is_empty_string() -> None:
    policies = (
        '@id("self") @reason("the agent acts for itself")\n'
        'permit(principal, action, resource) when { context.on_behalf_of == "" };\n'
    )
    engine = CedarEngine(policies)

    decision = decide(engine, tool_request(Resource.for_tool("search")))

    assert decision.allowed


# ---- Loading -------------------------------------------------------------------------------


def test_invalid_policy_syntax_rejected() -> None:
    with pytest.raises(PolicyLoadError, match="do not parse") as caught:
        CedarEngine("permit(principal, action, resource", source="broken.cedar")

    assert caught.value.source == "broken.cedar"
    assert caught.value.details


def test_undeclared_attribute_rejected_at_load() -> None:
    policies = (
        '@id("by-owner") @reason("owners only")\n'
        "forbid(principal, action, resource is Tool) when { resource.owner == principal };\n"
    )

    with pytest.raises(PolicyLoadError, match="do not validate against schema") as caught:
        CedarEngine(PERMIT_ALL + policies, source="owners.cedar")

    assert caught.value.source == "owners.cedar"
    assert any("`by-owner`" in line and "owner" in line for line in caught.value.details)


def test_type_error_rejected_at_load() -> None:
    policies = PERMIT_ALL + (
        'forbid(principal, action, resource) when { context.data_level == "high" || 1 };\n'
    )

    with pytest.raises(PolicyLoadError) as caught:
        CedarEngine(policies)

    assert caught.value.details


def test_duplicate_policy_id_rejected() -> None:
    with pytest.raises(PolicyLoadError, match="use the id 'all' twice"):
        CedarEngine(PERMIT_ALL + PERMIT_ALL)


def test_empty_policy_set_rejected() -> None:
    with pytest.raises(PolicyLoadError, match="contain no policy"):
        CedarEngine("// nothing here\n")


def test_schema_in_cedar_syntax_rejected() -> None:
    schema = "entity Agent; entity Tool; action call_tool appliesTo { principal: Agent };"

    with pytest.raises(PolicyLoadError, match="not valid JSON") as caught:
        CedarEngine(PERMIT_ALL, schema=schema, schema_source="app.cedarschema")

    assert caught.value.source == "app.cedarschema"


def test_invalid_schema_rejected() -> None:
    schema = '{"": {"entityTypes": {"Agent": {"shape": {"type": "Recrod"}}}, "actions": {}}}'

    with pytest.raises(PolicyLoadError, match="not a valid Cedar schema"):
        CedarEngine(PERMIT_ALL, schema=schema)


def test_policy_load_error_is_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        CedarEngine("permit(")


def test_from_file_loads_policies_and_schema(tmp_path: Path) -> None:
    policy_file = tmp_path / "app.cedar"
    policy_file.write_text(PERMIT_ALL, encoding="utf-8")
    schema_file = tmp_path / "app.cedarschema.json"
    schema_file.write_text(shipped_schema(), encoding="utf-8")

    engine = CedarEngine.from_file(policy_file, schema_path=schema_file)

    assert engine.policy_ids == ("all",)
    assert decide(engine, model_request(route())).allowed


def test_from_file_missing_file_rejected(tmp_path: Path) -> None:
    missing = tmp_path / "missing.cedar"

    with pytest.raises(PolicyLoadError, match="Cannot read the policy file") as caught:
        CedarEngine.from_file(missing)

    assert caught.value.source == str(missing)


def test_policy_without_id_uses_positional_id() -> None:
    engine = CedarEngine("permit(principal, action, resource);")

    decision = decide(engine, model_request(route()))

    assert decision.policy_ids == ("policy0",)
    assert decision.reason == "allowed by policy policy0"


def test_smallest_integer_obligation_wins() -> None:
    policies = (
        '@id("long") @grant_lifetime("600") @mode("a") permit(principal, action, resource);\n'
        '@id("short") @grant_lifetime("60") @mode("b") permit(principal, action, resource);\n'
    )
    engine = CedarEngine(policies)

    decision = decide(engine, model_request(route()))

    assert decision.obligations == {"grant_lifetime": "60", "mode": "a"}


def test_engine_docstring_example_runs() -> None:
    docstring = CedarEngine.__doc__ or ""
    match = re.search(r"```python\n(.*?)```", docstring, re.DOTALL)
    assert match is not None
    code = textwrap.dedent(match.group(1))

    exec(compile(code, "<CedarEngine example>", "exec"), {})  # noqa: S102


# ---- Requests ------------------------------------------------------------------------------


def test_cache_key_equal_for_equal_requests() -> None:
    first = model_request(route())
    second = model_request(route())

    assert first.cache_key() == second.cache_key()
    assert hash(first) == hash(second)


def test_cache_key_keeps_bool_and_int_apart() -> None:
    # True == 1 in Python, but Cedar types them differently: sharing a cache entry would
    # reuse a decision made for the other type.
    as_bool = Subject("agent", properties={"verified": True})
    as_int = Subject("agent", properties={"verified": 1})

    assert as_bool.cache_key() != as_int.cache_key()


def test_request_copies_top_level_mappings() -> None:
    values = context()
    request = AccessRequest(agent(), "call_tool", Resource.for_tool("search"), values)
    key = request.cache_key()

    values["data_level"] = 3

    assert request.context["data_level"] == 1
    assert request.cache_key() == key


def test_for_tool_rejects_unknown_risk() -> None:
    with pytest.raises(ConfigurationError, match="has risk 'extreme'"):
        Resource.for_tool("search", risk="extreme")


# ---- Decision cache ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingEngine:
    """Allows everything and records each batch it receives."""

    def __init__(self, decision: Decision | None = None) -> None:
        self.batches: list[list[AccessRequest]] = []
        self.decision = decision or Decision(allowed=True, policy_ids=("all",))

    def evaluate(self, requests: Sequence[AccessRequest]) -> list[Decision]:
        self.batches.append(list(requests))
        return [self.decision] * len(requests)


class RaisingEngine:
    def evaluate(self, requests: Sequence[AccessRequest]) -> list[Decision]:
        raise RuntimeError("backend down")


class ShortEngine:
    def evaluate(self, requests: Sequence[AccessRequest]) -> list[Decision]:
        return []


def test_cache_miss_calls_engine() -> None:
    inner = CountingEngine()
    cache = CachingPolicyEngine(inner, clock=Clock())

    [decision] = cache.evaluate([model_request(route())])

    assert decision.allowed
    assert len(inner.batches) == 1


def test_cache_hit_skips_engine() -> None:
    inner = CountingEngine()
    cache = CachingPolicyEngine(inner, clock=Clock())
    cache.evaluate([model_request(route())])

    [decision] = cache.evaluate([model_request(route())])

    assert decision.allowed
    assert len(inner.batches) == 1


def test_cache_sends_each_miss_once() -> None:
    inner = CountingEngine()
    cache = CachingPolicyEngine(inner, clock=Clock())
    cache.evaluate([model_request(route("a"))])
    batch = [model_request(route("a")), model_request(route("b")), model_request(route("b"))]

    decisions = cache.evaluate(batch)

    assert len(decisions) == 3
    assert [r.resource.id for r in inner.batches[1]] == ["b"]


def test_cache_entry_expires_after_ttl() -> None:
    clock = Clock()
    inner = CountingEngine()
    cache = CachingPolicyEngine(inner, ttl=30.0, clock=clock)
    cache.evaluate([model_request(route())])

    clock.now += 29.9
    cache.evaluate([model_request(route())])
    clock.now += 0.2
    cache.evaluate([model_request(route())])

    assert len(inner.batches) == 2


def test_cache_skips_decisions_with_errors() -> None:
    inner = CountingEngine(Decision(allowed=False, reason="failed", errors=("boom",)))
    cache = CachingPolicyEngine(inner, clock=Clock())

    cache.evaluate([model_request(route())])
    cache.evaluate([model_request(route())])

    assert len(inner.batches) == 2
    assert len(cache) == 0


def test_cache_evicts_least_recently_used() -> None:
    inner = CountingEngine()
    cache = CachingPolicyEngine(inner, maxsize=2, clock=Clock())
    cache.evaluate([model_request(route("a"))])
    cache.evaluate([model_request(route("b"))])
    cache.evaluate([model_request(route("a"))])

    cache.evaluate([model_request(route("c"))])
    cache.evaluate([model_request(route("a"))])
    cache.evaluate([model_request(route("b"))])

    asked = [r.resource.id for batch in inner.batches for r in batch]
    assert asked == ["a", "b", "c", "b"]


def test_cache_clear_drops_decisions() -> None:
    inner = CountingEngine()
    cache = CachingPolicyEngine(inner, clock=Clock())
    cache.evaluate([model_request(route())])

    cache.clear()
    cache.evaluate([model_request(route())])

    assert len(inner.batches) == 2


def test_cache_denies_when_engine_raises() -> None:
    cache = CachingPolicyEngine(RaisingEngine(), clock=Clock())

    decisions = cache.evaluate([model_request(route("a")), model_request(route("b"))])

    assert [d.allowed for d in decisions] == [False, False]
    assert decisions[0].errors == ("the policy engine raised RuntimeError: backend down",)


def test_cache_denies_short_engine_result() -> None:
    cache = CachingPolicyEngine(ShortEngine(), clock=Clock())

    [decision] = cache.evaluate([model_request(route())])

    assert not decision.allowed
    assert "returned 0 items for 1 requests" in decision.errors[0]


@pytest.mark.parametrize(("option", "value"), [("ttl", 0.0), ("maxsize", 0)])
def test_cache_rejects_invalid_limits(option: str, value: float) -> None:
    options: Mapping[str, Any] = {option: value}

    with pytest.raises(ConfigurationError, match=option):
        CachingPolicyEngine(CountingEngine(), **options)


def test_cache_over_cedar_engine(engine: CedarEngine) -> None:
    cache = CachingPolicyEngine(engine, clock=Clock())
    request = model_request(route(clearance="public"), data_class="internal")

    first = cache.evaluate([request])
    second = cache.evaluate([request])

    assert first == second
    assert second[0].policy_ids == ("data-class-clearance",)


def test_starter_denies_route_outside_task_jurisdiction(engine: CedarEngine) -> None:
    decision = decide(engine, model_request(route(jurisdiction="us"), jurisdiction="eu"))
    assert not decision.allowed
    assert decision.policy_ids == ("jurisdiction-match",)


def test_starter_allows_route_in_task_jurisdiction(engine: CedarEngine) -> None:
    decision = decide(engine, model_request(route(jurisdiction="eu"), jurisdiction="eu"))
    assert decision.allowed


def test_starter_ignores_jurisdiction_when_task_names_none(engine: CedarEngine) -> None:
    assert decide(engine, model_request(route(jurisdiction="us"))).allowed
