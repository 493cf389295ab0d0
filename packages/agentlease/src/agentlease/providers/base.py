"""The interface every provider protocol implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Protocol, runtime_checkable

import httpx

from agentlease.messages import ChatChunk, ChatRequest, ChatResponse
from agentlease.routing import Route

__all__ = ["ChatProvider"]


@runtime_checkable
class ChatProvider(Protocol):
    """A wire protocol that sends neutral chat requests to a route's endpoint.

    A provider keeps connection pools and no credentials: each call receives an `httpx.Auth`
    that attaches the credential for that request. Every failure is a `ProviderError`, and a
    stream that fails after its first content or tool-call delta raises `StreamInterrupted`.
    """

    def chat(self, route: Route, request: ChatRequest, *, auth: httpx.Auth) -> ChatResponse:
        """Send `request` to `route` and return the complete response."""
        ...

    async def achat(self, route: Route, request: ChatRequest, *, auth: httpx.Auth) -> ChatResponse:
        """Send `request` to `route` and return the complete response, asynchronously."""
        ...

    def stream(
        self, route: Route, request: ChatRequest, *, auth: httpx.Auth
    ) -> Iterator[ChatChunk]:
        """Send `request` to `route` and yield the response as it arrives."""
        ...

    def astream(
        self, route: Route, request: ChatRequest, *, auth: httpx.Auth
    ) -> AsyncIterator[ChatChunk]:
        """Send `request` to `route` and yield the answer as it arrives, asynchronously."""
        ...

    def close(self) -> None:
        """Close the provider's connections."""
        ...

    async def aclose(self) -> None:
        """Close the provider's connections, including those of the running event loop."""
        ...
