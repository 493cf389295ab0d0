"""Settings: what `agentlease.toml` may contain, and how it is found.

The file is looked up in this order: the path in ``AGENTLEASE_CONFIG``, then
``agentlease.toml`` in the working directory. Without either, the embedded defaults apply: a
development identity, an in-process ES256 broker, the starter Cedar policies, and an audit log
at ``.agentlease/audit.jsonl``. Every table rejects unknown keys, so a typo fails at load time
instead of running with a default.

```toml
[identity]
source = "development"                 # or "oidc-file"
spiffe_id = "spiffe://example.org/agent/research"

[broker]
key_file = ".agentlease/signing-key.pem" # share one issuer key between processes
grant_lifetime = 300                   # seconds

[policy]
path = "policies"                      # a .cedar file or a folder of them

[audit]
path = ".agentlease/audit.jsonl"

[[routes]]
name = "eu-secure"
base_url = "http://127.0.0.1:8000/v1"
model = "gpt-4o-mini"
clearance = "confidential"
groups = ["default"]
```
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentlease.errors import ConfigurationError
from agentlease.routing import Capabilities, Route

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "CONFIG_ENV",
    "AuditSettings",
    "BrokerSettings",
    "IdentitySettings",
    "PolicySettings",
    "RouteSettings",
    "Settings",
    "find_config",
    "load_settings",
]

CONFIG_ENV = "AGENTLEASE_CONFIG"
"""The environment variable that names the configuration file."""

DEFAULT_CONFIG_NAME = "agentlease.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IdentitySettings(_Strict):
    """The ``[identity]`` table."""

    source: Literal["development", "oidc-file"] = "development"
    spiffe_id: str | None = None
    path: str | None = Field(default=None, description="The OIDC token file.")
    jwks_file: str | None = Field(default=None, description="The issuer's JWKS, to verify.")
    issuer: str | None = None
    audience: str | None = None


class BrokerSettings(_Strict):
    """The ``[broker]`` table."""

    issuer: str = "urn:agentlease:local"
    key_file: str | None = None
    grant_lifetime: int = Field(default=300, gt=0, le=3600)
    max_lifetime: int = Field(default=900, gt=0, le=3600)


class PolicySettings(_Strict):
    """The ``[policy]`` table."""

    engine: Literal["cedar"] = "cedar"
    path: str | None = None
    decision_cache_ttl: float = Field(default=60.0, ge=0)


class AuditSettings(_Strict):
    """The ``[audit]`` table."""

    path: str = ".agentlease/audit.jsonl"
    fsync: Literal["always", "flush", "never"] = "flush"


class CapabilitySettings(_Strict):
    """The ``[routes.capabilities]`` table."""

    tools: bool = True
    structured_output: bool = True
    vision: bool = False
    context_window: int | None = None


class RouteSettings(_Strict):
    """One ``[[routes]]`` entry; the fields mirror `agentlease.Route`."""

    name: str
    base_url: str
    model: str
    provider: str = "openai"
    protocol: Literal["openai", "anthropic"] = "openai"
    jurisdiction: str = "unknown"
    clearance: str = "internal"
    credential: Literal["grant", "exchange", "api_key"] = "grant"
    api_key_env: str | None = None
    groups: list[str] = Field(default_factory=lambda: [])
    priority: int = 100
    capabilities: CapabilitySettings = Field(default_factory=CapabilitySettings)
    price_per_million_input: float | None = None
    price_per_million_output: float | None = None
    timeout: float = Field(default=60.0, gt=0)
    attributes: dict[str, Any] = Field(default_factory=lambda: {})

    def to_route(self) -> Route:
        """Build the `Route` this entry declares."""
        data = self.model_dump()
        data["groups"] = tuple(self.groups)
        data["capabilities"] = Capabilities(**data["capabilities"])
        return Route(**data)


class Settings(_Strict):
    """Everything `agentlease.toml` may configure."""

    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    routes: list[RouteSettings] = Field(default_factory=lambda: [])
    source: str | None = Field(default=None, exclude=True)
    base_dir: str = Field(default=".", exclude=True)

    def resolve_path(self, path: str) -> Path:
        """Resolve a path from the file relative to the file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate

    def build_routes(self) -> list[Route]:
        """Build the declared routes."""
        return [entry.to_route() for entry in self.routes]


def find_config(start: Path | None = None) -> Path | None:
    """Return the configuration file to use, or None for the embedded defaults.

    Raises:
        ConfigurationError: ``AGENTLEASE_CONFIG`` names a file that does not exist.
    """
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"{CONFIG_ENV} names {named!r}, which is not a file; "
                "fix the path or unset the variable to use the defaults."
            )
        return path
    candidate = (start or Path.cwd()) / DEFAULT_CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load settings from a TOML file, or the embedded defaults when there is none.

    Args:
        path: The file to read; None looks it up with `find_config`.

    Raises:
        ConfigurationError: The file cannot be read, is not valid TOML, or has an unknown or
            invalid key. The message names the file and the key.
    """
    file = Path(path) if path is not None else find_config()
    if file is None:
        return Settings()

    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read {str(file)!r} ({exc.strerror}); check the path and its permissions."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{str(file)!r} is not valid TOML: {exc}.") from None

    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigurationError(
            f"Invalid setting {where!r} in {str(file)!r}: {first['msg']}; "
            "see the agentlease.toml reference for the allowed keys."
        ) from None

    try:
        settings.build_routes()
    except ConfigurationError as exc:
        raise ConfigurationError(f"In {str(file)!r}: {exc}") from None

    return settings.model_copy(update={"source": str(file), "base_dir": str(file.parent.resolve())})
