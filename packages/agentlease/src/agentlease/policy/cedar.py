"""The embedded Cedar policy engine, built on cedarpy.

This is the only module that imports cedarpy. `CedarEngine` parses the schema and the policies
once, validates the policies against the schema at load time, and keeps the parsed handles for
every later decision. Each `evaluate` call sends its whole batch to Cedar in one call.

The engine fails closed. Cedar skips a policy whose condition raises an error, so a `forbid`
that reads a missing attribute would let a request through. This engine therefore denies every
request whose evaluation reported any error. When cedarpy itself fails, it denies every request
of the batch.

Mapping requests to Cedar:

- The subject and the resource become entities with no parents. Properties that the schema
  does not declare for the entity type are dropped, so routes may carry extra attributes for
  other uses; declare them in the schema to use them in policies.
- Context keys that the schema does not declare for the action are dropped.
- A top-level ``None`` becomes ``""`` where the schema declares a ``String`` and is left out
  otherwise. Lists, tuples and sets become Cedar sets; mappings become records.
- The action is ``Action::"<name>"``. The schema must be in Cedar's JSON format, because the
  engine reads the declared attributes from it; entity types may be namespaced, actions may not.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import cedarpy

from agentlease.errors import PolicyLoadError
from agentlease.policy._convert import InvalidValue, SchemaShape, read_shape, to_attributes
from agentlease.policy.model import AccessRequest, Decision, Resource, Subject

__all__ = ["CedarEngine", "shipped_schema", "starter_policies"]

_logger = logging.getLogger(__name__)

_STARTER_FILE = "starter.cedar"
_SCHEMA_FILE = "schema.cedarschema.json"

# Matches the policy ids that Cedar puts in error messages, such as "policy `policy3`".
_POLICY_IN_MESSAGE = re.compile(r"policy `([^`]+)`")
# Cedar names a policy without an explicit id by its position in the text: policy0, policy1...
_POSITIONAL_ID = re.compile(r"policy(\d+)")

_ENTITY_CACHE_SIZE = 256
_CONTEXT_CACHE_SIZE = 1024
_DECISION_CACHE_SIZE = 1024


def _package_file(name: str) -> Any:
    return resources.files("agentlease.policy").joinpath(name)


def starter_policies() -> str:
    """Return the text of the shipped starter policies, to extend them with your own."""
    text: str = _package_file(_STARTER_FILE).read_text(encoding="utf-8")
    return text


def shipped_schema() -> str:
    """Return the shipped Cedar schema, in Cedar's JSON schema format."""
    text: str = _package_file(_SCHEMA_FILE).read_text(encoding="utf-8")
    return text


_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class _LruCache(Generic[_K, _V]):
    """A small thread-safe least-recently-used map."""

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._items: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._maxsize:
                self._items.popitem(last=False)


# ---- Schema --------------------------------------------------------------------------------


def _load_schema(text: str, source: str) -> tuple[cedarpy.Schema, SchemaShape]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PolicyLoadError(
            f"Schema {source} is not valid JSON ({exc}); write it in Cedar's JSON schema "
            f"format, like the shipped {_SCHEMA_FILE}.",
            source=source,
            details=(str(exc),),
        ) from None
    if not isinstance(document, dict):
        raise PolicyLoadError(
            f"Schema {source} is not a JSON object; write it in Cedar's JSON schema format, "
            f"like the shipped {_SCHEMA_FILE}.",
            source=source,
        )

    try:
        schema = cedarpy.Schema.from_json_str(text)
    except ValueError as exc:
        raise PolicyLoadError(
            f"Schema {source} is not a valid Cedar schema: {exc}; fix the schema and reload.",
            source=source,
            details=(str(exc),),
        ) from None

    return schema, read_shape(cast("dict[str, Any]", document))


# ---- Policies ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PolicyInfo:
    """The annotations of one policy that its decisions report.

    Attributes:
        label: The ``@id`` annotation, or Cedar's positional id when the policy has none.
        order: The position of the policy in its file.
        reason: The ``@reason`` annotation.
        obligations: Every other annotation.
    """

    label: str
    order: int
    reason: str
    obligations: Mapping[str, str]


def _position(policy_id: str, fallback: int) -> int:
    """Return a policy's position in its file from Cedar's positional id ``policy<N>``."""
    match = _POSITIONAL_ID.fullmatch(policy_id)
    return int(match.group(1)) if match else fallback


def _read_annotations(text: str, source: str) -> dict[str, _PolicyInfo]:
    document: Any = json.loads(cedarpy.policies_to_json_str(text))
    static: dict[str, Any] = document.get("staticPolicies") or {}

    infos: dict[str, _PolicyInfo] = {}
    labels: set[str] = set()
    for index, (policy_id, policy) in enumerate(static.items()):
        written: dict[str, Any] = policy.get("annotations") or {}
        annotations = {key: "" if value is None else str(value) for key, value in written.items()}
        label = annotations.pop("id", "") or policy_id
        reason = annotations.pop("reason", "")
        if label in labels:
            raise PolicyLoadError(
                f"Policies in {source} use the id {label!r} twice; give each policy a unique "
                "@id so that decisions name one policy.",
                source=source,
            )
        labels.add(label)
        infos[policy_id] = _PolicyInfo(label, _position(policy_id, index), reason, annotations)
    return infos


def _relabel(message: str, infos: Mapping[str, _PolicyInfo]) -> str:
    """Replace Cedar's positional policy ids in a message with the policies' ``@id``."""

    def replace(match: re.Match[str]) -> str:
        info = infos.get(match.group(1))
        return f"policy `{info.label}`" if info is not None else match.group(0)

    return _POLICY_IN_MESSAGE.sub(replace, message)


def _load_policies(
    text: str, source: str, schema: cedarpy.Schema, schema_source: str
) -> tuple[cedarpy.PolicySet, dict[str, _PolicyInfo]]:
    try:
        policy_set = cedarpy.PolicySet.from_str(text)
    except ValueError as exc:
        raise PolicyLoadError(
            f"Policies in {source} do not parse: {exc}; fix the Cedar syntax and reload.",
            source=source,
            details=(str(exc),),
        ) from None
    if len(policy_set) == 0:
        raise PolicyLoadError(
            f"Policies in {source} contain no policy, so every request would be denied; "
            "add at least one permit policy.",
            source=source,
        )

    infos = _read_annotations(text, source)

    result = cedarpy.validate_policies(text, schema)  # pyright: ignore[reportUnknownMemberType]
    if not result.validation_passed:
        details: list[str] = []
        for error in result.errors:
            message = _relabel(error.error, infos)
            info = infos.get(error.policy_id)
            if info is not None and f"`{info.label}`" not in message:
                message = f"policy `{info.label}`: {message}"
            details.append(message)
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        first = details[0] if details else "validation failed"
        raise PolicyLoadError(
            f"Policies in {source} do not validate against schema {schema_source}: "
            f"{first}{more}; fix the policies or declare what they use in the schema.",
            source=source,
            details=details,
        )
    return policy_set, infos


# ---- Requests ------------------------------------------------------------------------------


def _uid(entity: Subject | Resource) -> str:
    return f"{entity.type}::{json.dumps(entity.id)}"


def _denied(reason: str, errors: Sequence[str]) -> Decision:
    return Decision(allowed=False, reason=reason, errors=tuple(errors))


def _failed(error: str) -> Decision:
    return _denied(f"denied because policy evaluation failed: {error}", (error,))


def _merge_obligations(infos: Sequence[_PolicyInfo]) -> dict[str, str]:
    """Merge the obligations of the policies that allowed a request.

    When two policies set the same obligation to integers, the smaller value wins, because it
    is the stricter one (a shorter lifetime, fewer tokens). Otherwise the policy earlier in the
    file wins.
    """
    merged: dict[str, str] = {}
    for info in infos:
        for key, value in info.obligations.items():
            current = merged.get(key)
            if current is None:
                merged[key] = value
            elif value.lstrip("-").isdigit() and current.lstrip("-").isdigit():
                merged[key] = value if int(value) < int(current) else current
    return merged


class CedarEngine:
    """Decide access requests with Cedar policies validated against a schema.

    Args:
        policies: Cedar policy text. ``None`` loads the shipped starter policies.
        schema: A Cedar schema in Cedar's JSON format. ``None`` loads the shipped schema.
        source: Where the policies came from, for error messages.
        schema_source: Where the schema came from, for error messages.

    Raises:
        PolicyLoadError: The schema or the policies do not parse, the policies do not
            validate against the schema, the policy set is empty, or two policies share
            one ``@id``.

    Example:
        ```python
        from agentlease.policy import AccessRequest, CedarEngine, Resource, Subject

        engine = CedarEngine()
        request = AccessRequest(
            subject=Subject("spiffe://example.org/agent", properties={
                "verified": True, "issuer": "example.org", "trust_domain": "example.org"}),
            action="call_tool",
            resource=Resource.for_tool("search", risk="low", clearance="internal"),
            context={"task": "report", "purpose": "", "data_class": "internal",
                     "data_level": 1, "jurisdiction": None, "on_behalf_of": None,
                     "agent_state": None, "depth": 0},
        )
        [decision] = engine.evaluate([request])
        assert decision.allowed and decision.policy_ids == ("tool-default",)
        ```
    """

    def __init__(
        self,
        policies: str | None = None,
        *,
        schema: str | None = None,
        source: str = "<string>",
        schema_source: str = "<string>",
    ) -> None:
        if policies is None:
            policies = starter_policies()
            source = str(_package_file(_STARTER_FILE))
        if schema is None:
            schema = shipped_schema()
            schema_source = str(_package_file(_SCHEMA_FILE))

        self._source = source
        self._schema, self._shape = _load_schema(schema, schema_source)
        self._policies, self._infos = _load_policies(policies, source, self._schema, schema_source)
        self._entities: _LruCache[frozenset[Hashable], cedarpy.Entities] = _LruCache(
            _ENTITY_CACHE_SIZE
        )
        self._contexts: _LruCache[tuple[str, Hashable], str] = _LruCache(_CONTEXT_CACHE_SIZE)
        self._decisions: dict[tuple[bool, tuple[str, ...]], Decision] = {}
        _logger.debug("Loaded %d Cedar policies from %s", len(self._infos), source)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        schema_path: str | os.PathLike[str] | None = None,
    ) -> CedarEngine:
        """Load policies, and optionally a JSON schema, from files.

        Raises:
            PolicyLoadError: A file cannot be read, or its content does not load.
        """
        policies = _read_file(path, "policy")
        schema = None if schema_path is None else _read_file(schema_path, "schema")
        return cls(
            policies,
            schema=schema,
            source=os.fspath(path),
            schema_source="<string>" if schema_path is None else os.fspath(schema_path),
        )

    def __repr__(self) -> str:
        return f"CedarEngine(source={self._source!r}, policies={len(self._infos)})"

    @property
    def policy_ids(self) -> tuple[str, ...]:
        """The ids of the loaded policies (``@id``, else Cedar's positional id), in file order."""
        return tuple(info.label for info in self._infos.values())

    def evaluate(self, requests: Sequence[AccessRequest]) -> list[Decision]:
        """Decide a batch of requests in one Cedar call.

        Returns one decision per request, in order. A request whose values cannot be
        converted, or whose evaluation reports an error, is denied with `Decision.errors`
        filled. If cedarpy fails, every request of the batch is denied.

        Raises:
            TypeError: An item is not an `AccessRequest`.
        """
        for request in requests:
            if not isinstance(request, AccessRequest):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise TypeError(
                    f"CedarEngine.evaluate expects AccessRequest items, not "
                    f"{type(request).__name__}; build them with AccessRequest(...)."
                )
        if not requests:
            return []

        try:
            return self._evaluate(requests)
        except Exception as exc:
            _logger.warning(
                "Cedar evaluation failed; denying all %d requests of the batch",
                len(requests),
                exc_info=True,
            )
            decision = _failed(f"the Cedar engine raised {type(exc).__name__}: {exc}")
            return [decision] * len(requests)

    def _evaluate(self, requests: Sequence[AccessRequest]) -> list[Decision]:
        decisions: list[Decision | None] = [None] * len(requests)
        indexes: list[int] = []
        cedar_requests: list[dict[str, Any]] = []
        for index, request in enumerate(requests):
            try:
                context = self._context_json(request)
            except InvalidValue as exc:
                decisions[index] = _failed(str(exc))
                continue
            indexes.append(index)
            cedar_requests.append(
                {
                    "principal": {"type": request.subject.type, "id": request.subject.id},
                    "action": {"type": "Action", "id": request.action},
                    "resource": {"type": request.resource.type, "id": request.resource.id},
                    "context": context,
                }
            )

        if indexes:
            self._decide(requests, indexes, cedar_requests, decisions)

        final: list[Decision] = []
        for decision in decisions:
            if decision is None:
                raise RuntimeError("a request of the batch received no decision")
            final.append(decision)
        return final

    def _decide(
        self,
        requests: Sequence[AccessRequest],
        indexes: Sequence[int],
        cedar_requests: Sequence[dict[str, Any]],
        decisions: list[Decision | None],
    ) -> None:
        """Evaluate some requests of a batch against one entity set and store their decisions."""
        sources: dict[Hashable, Subject | Resource] = {}
        for index in indexes:
            request = requests[index]
            sources.setdefault(request.subject.cache_key(), request.subject)
            sources.setdefault(request.resource.cache_key(), request.resource)

        try:
            entities = self._entities_for(sources)
        except InvalidValue as exc:
            if len(indexes) > 1:
                self._decide_one_by_one(requests, indexes, cedar_requests, decisions)
            else:
                decisions[indexes[0]] = _failed(str(exc))
            return

        results = cedarpy.is_authorized_batch(  # pyright: ignore[reportUnknownMemberType]
            list(cedar_requests), self._policies, entities, self._schema
        )
        if len(results) != len(indexes):
            raise RuntimeError(
                f"cedarpy returned {len(results)} results for {len(indexes)} requests"
            )
        for index, result in zip(indexes, results, strict=True):
            decisions[index] = self._to_decision(requests[index], result)

    def _decide_one_by_one(
        self,
        requests: Sequence[AccessRequest],
        indexes: Sequence[int],
        cedar_requests: Sequence[dict[str, Any]],
        decisions: list[Decision | None],
    ) -> None:
        """Isolate the requests whose entities Cedar rejects, so the others are still decided."""
        for position, index in enumerate(indexes):
            self._decide(requests, [index], [cedar_requests[position]], decisions)

    def _entities_for(self, sources: Mapping[Hashable, Subject | Resource]) -> cedarpy.Entities:
        key = frozenset(sources)
        entities = self._entities.get(key)
        if entities is not None:
            return entities

        documents = [self._entity_json(entity) for entity in sources.values()]
        try:
            entities = cedarpy.Entities.from_json_str(  # pyright: ignore[reportUnknownMemberType]
                json.dumps(documents), self._schema
            )
        except ValueError as exc:
            names = ", ".join(_uid(entity) for entity in sources.values())
            raise InvalidValue(
                f"Cedar rejected the entities {names} ({exc}); "
                "make their properties match the schema."
            ) from None
        self._entities.put(key, entities)
        return entities

    def _entity_json(self, entity: Subject | Resource) -> dict[str, Any]:
        declared = self._shape.entities.get(entity.type)
        attributes = to_attributes(entity.properties, declared, _uid(entity))
        return {
            "uid": {"type": entity.type, "id": entity.id},
            "attrs": attributes,
            "parents": [],
        }

    def _context_json(self, request: AccessRequest) -> str:
        key = (request.action, request.context_key())
        cached = self._contexts.get(key)
        if cached is not None:
            return cached

        declared = self._shape.contexts.get(request.action)
        where = f"context of {request.action}"
        text = json.dumps(to_attributes(request.context, declared, where))
        self._contexts.put(key, text)
        return text

    def _to_decision(self, request: AccessRequest, result: cedarpy.AuthzResult) -> Decision:
        diagnostics = result.diagnostics
        if diagnostics.errors:
            errors = [_relabel(str(error), self._infos) for error in diagnostics.errors]
            return _denied(f"denied because policy evaluation failed: {errors[0]}", errors)

        allowed = result.decision is cedarpy.Decision.Allow
        if not allowed and result.decision is not cedarpy.Decision.Deny:
            return _failed(f"Cedar returned the decision {result.decision.value}")

        policy_ids = tuple(diagnostics.reasons)
        if not policy_ids:
            if allowed:
                return _failed("Cedar allowed the request without naming a policy")
            reason = f"no policy permits {request.action} on {_uid(request.resource)}"
            return Decision(allowed=False, reason=reason)

        # A decision that names policies depends only on those policies, so it is shared.
        key = (allowed, policy_ids)
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._policy_decision(allowed, policy_ids)
            if len(self._decisions) < _DECISION_CACHE_SIZE:
                self._decisions[key] = decision
        return decision

    def _policy_decision(self, allowed: bool, policy_ids: Sequence[str]) -> Decision:
        """Build the decision of the policies that determined it, in file order."""
        infos = sorted((self._info(policy_id) for policy_id in policy_ids), key=_by_position)
        verb = "allowed" if allowed else "denied"
        return Decision(
            allowed=allowed,
            policy_ids=tuple(info.label for info in infos),
            reason="; ".join(info.reason or f"{verb} by policy {info.label}" for info in infos),
            obligations=_merge_obligations(infos) if allowed else {},
        )

    def _info(self, policy_id: str) -> _PolicyInfo:
        info = self._infos.get(policy_id)
        if info is None:
            return _PolicyInfo(policy_id, len(self._infos), "", {})
        return info


def _by_position(info: _PolicyInfo) -> int:
    return info.order


def _read_file(path: str | os.PathLike[str], what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError(
            f"Cannot read the {what} file {os.fspath(path)!r} ({exc}); check the path.",
            source=os.fspath(path),
        ) from None
