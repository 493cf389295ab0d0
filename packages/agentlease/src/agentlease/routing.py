"""Routes, and the catalog that resolves a requested model name to candidate routes.

A `Route` is one way to reach a model. `RouteCatalog.resolve` turns a route name, route group
or model id into candidate routes in preference order. This module does no I/O and decides
nothing: `agentlease.ModelClient` sends the candidates to the policy in one batch, calls the
first permitted one, and moves to the next permitted one on a retriable failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agentlease.errors import ConfigurationError, UnknownRouteError

__all__ = [
    "DATA_CLASSES",
    "Capabilities",
    "CredentialMode",
    "Protocol",
    "Route",
    "RouteCatalog",
    "data_class_level",
]

Protocol = Literal["openai", "anthropic"]
CredentialMode = Literal["grant", "exchange", "api_key"]

DATA_CLASSES: tuple[str, ...] = ("public", "internal", "confidential", "restricted")
"""Data classes from least to most sensitive; a route is cleared up to one of them."""


def data_class_level(data_class: str) -> int:
    """Return the rank of a data class in `DATA_CLASSES`.

    Raises:
        ConfigurationError: The name is not a known data class.
    """
    try:
        return DATA_CLASSES.index(data_class)
    except ValueError:
        known = ", ".join(DATA_CLASSES)
        raise ConfigurationError(
            f"Unknown data class {data_class!r}; use one of: {known}."
        ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """The features of a route's model; a call skips routes that lack a feature it needs."""

    tools: bool = True
    structured_output: bool = True
    vision: bool = False
    context_window: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One way to reach a model.

    Attributes:
        name: A unique route name, used in policies (``Route::"<name>"``) and in the audit log.
        base_url: The API base URL, such as ``http://127.0.0.1:8000/v1``.
        model: The model id sent to the provider.
        provider: The provider name reported as ``gen_ai.provider.name``.
        protocol: The wire protocol.
        jurisdiction: Where the provider processes data, such as ``"eu"`` or ``"us"``.
        clearance: The most sensitive data class the route is cleared for.
        credential: How calls are credentialed: the task's grant, an exchanged provider token,
            or a static API key read at request time.
        api_key_env: For ``api_key`` routes, the environment variable that holds the key.
        groups: Route groups this route belongs to; a request for a group name considers
            every route of the group in preference order.
        priority: Lower is preferred; routes of equal priority keep their declaration order.
        capabilities: What the model supports.
        price_per_million_input: Price in USD per million input tokens, for reports.
        price_per_million_output: Price in USD per million output tokens, for reports.
        timeout: Seconds to wait for the provider before the call counts as failed.
        attributes: Extra attributes passed to the policy as route properties.
    """

    name: str
    base_url: str
    model: str
    provider: str = "openai"
    protocol: Protocol = "openai"
    jurisdiction: str = "unknown"
    clearance: str = "internal"
    credential: CredentialMode = "grant"
    api_key_env: str | None = None
    groups: tuple[str, ...] = ()
    priority: int = 100
    capabilities: Capabilities = field(default_factory=Capabilities)
    price_per_million_input: float | None = None
    price_per_million_output: float | None = None
    timeout: float = 60.0
    attributes: Mapping[str, Any] = field(default_factory=lambda: {})

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigurationError("A route needs a non-empty name.")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"Route {self.name!r} has base_url {self.base_url!r}; "
                "use an http:// or https:// URL."
            )
        if self.protocol not in ("openai", "anthropic"):
            raise ConfigurationError(
                f"Route {self.name!r} has protocol {self.protocol!r}; use 'openai' or 'anthropic'."
            )
        if self.credential not in ("grant", "exchange", "api_key"):
            raise ConfigurationError(
                f"Route {self.name!r} has credential {self.credential!r}; "
                "use 'grant', 'exchange' or 'api_key'."
            )
        if self.credential == "api_key" and not self.api_key_env:
            raise ConfigurationError(
                f"Route {self.name!r} uses credential 'api_key' but sets no api_key_env; "
                "name the environment variable that holds the key."
            )
        data_class_level(self.clearance)

    @property
    def audience(self) -> str:
        """The grant audience for this route."""
        return f"route:{self.name}"

    @property
    def clearance_level(self) -> int:
        """The rank of `clearance` in `DATA_CLASSES`."""
        return data_class_level(self.clearance)

    def policy_properties(self) -> dict[str, Any]:
        """Return the attributes the policy sees for this route."""
        return {
            **self.attributes,
            "provider": self.provider,
            "model": self.model,
            "jurisdiction": self.jurisdiction,
            "clearance": self.clearance_level,
            "clearance_name": self.clearance,
            "credential": self.credential,
            "tools": self.capabilities.tools,
            "structured_output": self.capabilities.structured_output,
            "vision": self.capabilities.vision,
        }


class RouteCatalog:
    """The configured routes, looked up by route name, model id or group."""

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._routes: list[Route] = []
        self._by_name: dict[str, Route] = {}
        self._resolved: dict[str, tuple[Route, ...]] = {}
        for route in routes:
            self.add(route)

    def add(self, route: Route) -> None:
        """Add a route.

        Raises:
            ConfigurationError: A route with the same name exists.
        """
        if route.name in self._by_name:
            raise ConfigurationError(
                f"Route {route.name!r} is declared twice; give each route a unique name."
            )
        self._routes.append(route)
        self._by_name[route.name] = route
        self._resolved.clear()

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def get(self, name: str) -> Route | None:
        """Return the route with this exact name, if any."""
        return self._by_name.get(name)

    def names(self) -> list[str]:
        """Return every name a request may use: route names, groups and model ids."""
        seen: dict[str, None] = {}
        for route in self._routes:
            seen[route.name] = None
            for group in route.groups:
                seen[group] = None
            seen[route.model] = None
        return list(seen)

    def resolve(self, name: str) -> list[Route]:
        """Return the routes that serve a name, in preference order.

        A route name selects that route alone. Otherwise every route whose group or model id
        equals the name is a candidate, ordered by priority and then by declaration order.

        Raises:
            UnknownRouteError: No route serves the name.
        """
        resolved = self._resolved.get(name)
        if resolved is not None:
            return list(resolved)
        exact = self._by_name.get(name)
        if exact is not None:
            self._resolved[name] = (exact,)
            return [exact]
        matches = [r for r in self._routes if name in r.groups or r.model == name]
        if not matches:
            known = self.names()
            raise UnknownRouteError(
                f"No route serves model {name!r}; use one of {known} "
                "or declare a route for it in agentlease.toml.",
                name=name,
                known=known,
            )
        ordered = sorted(matches, key=lambda r: r.priority)
        self._resolved[name] = tuple(ordered)
        return ordered


def filter_capable(routes: Sequence[Route], *, tools: bool, structured_output: bool) -> list[Route]:
    """Return the routes whose capabilities cover what a call needs."""
    return [
        r
        for r in routes
        if (not tools or r.capabilities.tools)
        and (not structured_output or r.capabilities.structured_output)
    ]
