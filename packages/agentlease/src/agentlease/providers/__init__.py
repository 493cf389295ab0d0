"""Model provider protocols over httpx, and per-request credential injection.

`OpenAIProvider` speaks OpenAI-compatible chat completions. Providers hold connection pools and
never a credential: each call takes an `httpx.Auth`, normally a `RouteAuth` whose token source
returns the current task's grant or the route's API key at request time.
"""

from __future__ import annotations

from agentlease.providers.auth import RouteAuth, api_key_source
from agentlease.providers.base import ChatProvider
from agentlease.providers.openai import OpenAIProvider

__all__ = ["ChatProvider", "OpenAIProvider", "RouteAuth", "api_key_source"]
