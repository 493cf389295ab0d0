"""The engine-neutral shape of an authorization request and its decision.

A request follows the AuthZEN shape: a subject (the agent's workload identity), an action
(``invoke_model`` or ``call_tool``), a resource (a route or a tool, with its attributes) and a
context (the task). Every engine takes a batch of requests and returns one `Decision` per
request, in the same order.

Requests are immutable. Each one copies its top-level mappings and computes a hashable
fingerprint of all its values when it is built, so `CachingPolicyEngine` and the Cedar engine's
caches look it up without walking nested values again.

NOTE: nested lists and mappings inside properties or the context are not copied. Changing one
after the request is built leaves the fingerprint describing the old value, and a cache may then
return the decision made for the old value.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, cast

from agentlease.errors import ConfigurationError
from agentlease.routing import data_class_level

if TYPE_CHECKING:
    from agentlease.routing import Route

__all__ = [
    "TOOL_RISKS",
    "AccessRequest",
    "Decision",
    "PolicyEngine",
    "Resource",
    "Subject",
]

TOOL_RISKS: tuple[str, ...] = ("low", "medium", "high")
"""The risk levels a tool may declare, from least to most dangerous."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty_mapping() -> Mapping[str, Any]:
    return _EMPTY


def _read_only(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return a read-only shallow copy, so top-level keys cannot change after hashing."""
    if isinstance(mapping, MappingProxyType):
        return cast("Mapping[str, Any]", mapping)
    return MappingProxyType(dict(mapping))


# Tags for frozen values. Every tuple that `_freeze` returns starts with one of these, so
# values of different types never produce equal keys: without the tags `True == 1` and
# `1.0 == 1` would share a cache entry although Cedar treats them as different types.
_BOOL = "b"
_FLOAT = "f"
_LIST = "l"
_SET = "s"
_MAPPING = "m"
_OTHER = "o"


def _freeze(value: Any) -> Hashable:
    """Return a hashable fingerprint of a property or context value."""
    if value is None or type(value) is str or type(value) is int:
        return value
    if isinstance(value, bool):
        return (_BOOL, value)
    if isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return (_FLOAT, value)
    if isinstance(value, Mapping):
        items = cast("Mapping[Any, Any]", value)
        return (_MAPPING, frozenset((key, _freeze(item)) for key, item in items.items()))
    if isinstance(value, (list, tuple)):
        sequence = cast("Sequence[Any]", value)
        return (_LIST, tuple(_freeze(item) for item in sequence))
    if isinstance(value, (set, frozenset)):
        members = cast("frozenset[Any]", value)
        return (_SET, frozenset(_freeze(item) for item in members))
    try:
        hash(value)
    except TypeError:
        # An unhashable value of an unknown type gets a key that equals no other key, so a
        # request that carries it never receives a cached decision.
        return (_OTHER, object())
    return (_OTHER, type(value).__qualname__, value)


def _freeze_mapping(mapping: Mapping[str, Any]) -> Hashable:
    return frozenset((key, _freeze(value)) for key, value in mapping.items())


@dataclass(frozen=True, slots=True)
class Subject:
    """The principal of a request: normally the workload identity of the agent.

    Attributes:
        id: The workload id, such as a SPIFFE ID.
        type: The entity type the policy sees.
        properties: Attributes that policies read. The shipped Cedar schema declares ``verified``,
            ``issuer`` and ``trust_domain``.
    """

    id: str
    type: str = "Agent"
    properties: Mapping[str, Any] = field(default_factory=_empty_mapping)
    _key: Hashable = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        properties = _read_only(self.properties)
        object.__setattr__(self, "properties", properties)
        object.__setattr__(self, "_key", (self.type, self.id, _freeze_mapping(properties)))

    def __hash__(self) -> int:
        return hash(self._key)

    def cache_key(self) -> Hashable:
        """Return a hashable fingerprint of the type, id and properties."""
        return self._key


@dataclass(frozen=True, slots=True)
class Resource:
    """What a request acts on: a route (``invoke_model``) or a tool (``call_tool``).

    Attributes:
        type: The entity type the policy sees, ``"Route"`` or ``"Tool"``.
        id: The route or tool name.
        properties: Attributes that policies read. `for_route` and `for_tool` fill in the ones
            the shipped Cedar schema declares.
    """

    type: str
    id: str
    properties: Mapping[str, Any] = field(default_factory=_empty_mapping)
    _key: Hashable = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        properties = _read_only(self.properties)
        object.__setattr__(self, "properties", properties)
        object.__setattr__(self, "_key", (self.type, self.id, _freeze_mapping(properties)))

    def __hash__(self) -> int:
        return hash(self._key)

    def cache_key(self) -> Hashable:
        """Return a hashable fingerprint of the type, id and properties."""
        return self._key

    @classmethod
    def for_route(cls, route: Route) -> Resource:
        """Build the resource of a route from `Route.policy_properties`."""
        return cls("Route", route.name, route.policy_properties())

    @classmethod
    def for_tool(
        cls,
        name: str,
        *,
        risk: str = "low",
        clearance: str = "internal",
        attributes: Mapping[str, Any] | None = None,
    ) -> Resource:
        """Build the resource of a tool.

        Args:
            name: The tool name.
            risk: One of `TOOL_RISKS`.
            clearance: The most sensitive data class the tool may receive.
            attributes: Extra properties; they cannot override ``risk``, ``clearance`` or
                ``clearance_name``.

        Raises:
            ConfigurationError: The risk or the data class is unknown.
        """
        if risk not in TOOL_RISKS:
            known = ", ".join(TOOL_RISKS)
            raise ConfigurationError(f"Tool {name!r} has risk {risk!r}; use one of: {known}.")
        properties: dict[str, Any] = dict(attributes or {})
        properties.update(
            risk=risk,
            clearance=data_class_level(clearance),
            clearance_name=clearance,
        )
        return cls("Tool", name, properties)


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One authorization question: may this subject do this action on this resource now?

    Attributes:
        subject: Who acts.
        action: ``"invoke_model"`` or ``"call_tool"``.
        resource: The route or tool.
        context: Facts about the task. The shipped Cedar schema declares ``task``,
            ``purpose``, ``data_class``, ``data_level``, ``jurisdiction``, ``on_behalf_of``,
            ``agent_state`` and ``depth``.
    """

    subject: Subject
    action: str
    resource: Resource
    context: Mapping[str, Any]
    _key: tuple[Hashable, str, Hashable, Hashable] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        context = _read_only(self.context)
        object.__setattr__(self, "context", context)
        key = (
            self.subject.cache_key(),
            self.action,
            self.resource.cache_key(),
            _freeze_mapping(context),
        )
        object.__setattr__(self, "_key", key)

    def __hash__(self) -> int:
        return hash(self._key)

    def cache_key(self) -> Hashable:
        """Return a hashable fingerprint of the whole request.

        Two requests with equal keys carry equal values of equal types, so an engine
        returns the same decision for both.
        """
        return self._key

    def context_key(self) -> Hashable:
        """Return a hashable fingerprint of the context alone."""
        return self._key[3]


@dataclass(frozen=True, slots=True)
class Decision:
    """The decision on one `AccessRequest`.

    Attributes:
        allowed: Whether the request may proceed. Any evaluation error makes it ``False``.
        policy_ids: The ids of the policies that determined the decision.
        reason: Why, in words a reviewer can read in the audit log.
        obligations: What the caller must do when it proceeds, such as ``grant_lifetime``.
        errors: The engine's error messages when evaluation failed.
    """

    allowed: bool
    policy_ids: tuple[str, ...] = ()
    reason: str = ""
    obligations: Mapping[str, Any] = field(default_factory=_empty_mapping)
    errors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "obligations", _read_only(self.obligations))


class PolicyEngine(Protocol):
    """Anything that decides a batch of access requests.

    Engines fail closed: an engine that cannot decide a request returns a denying `Decision`
    with `Decision.errors` filled instead of raising.
    """

    def evaluate(self, requests: Sequence[AccessRequest]) -> list[Decision]:
        """Decide each request; the result has one decision per request, in order."""
        ...
