"""Shared HTTP plumbing of the providers: pooled httpx clients, JSON codecs and error mapping.

httpx errors and HTTP error statuses are translated to `agentlease.errors` here and nowhere
else, so every provider protocol fails the same way.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from typing import Any, cast

import httpx

from agentlease.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
)

__all__ = [
    "MAX_ERROR_TEXT",
    "HttpClients",
    "json_dumps",
    "json_loads",
    "provider_error_text",
    "redact",
    "status_error",
    "transport_error",
]

logger = logging.getLogger(__name__)

MAX_ERROR_TEXT = 300
"""How many characters of a provider's error message an exception message keeps."""

_USER_AGENT = "agentlease"


def _to_json_native(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(cast("Mapping[Any, Any]", value))
    if isinstance(value, (tuple, list, set, frozenset)):
        return list(cast("Iterable[Any]", value))
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable.")


def _stdlib_dumps(value: object) -> bytes:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_to_json_native)
    return text.encode()


json_dumps: Callable[[object], bytes] = _stdlib_dumps
"""Serialize a value to compact UTF-8 JSON, with orjson when it is installed."""

json_loads: Callable[[bytes | str], Any] = json.loads
"""Parse JSON text, with orjson when it is installed."""

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is an optional speed-up
    pass
else:
    _ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS

    def _orjson_dumps(value: object) -> bytes:
        return orjson.dumps(value, default=_to_json_native, option=_ORJSON_OPTIONS)

    json_dumps = _orjson_dumps
    json_loads = orjson.loads


_SECRET_PATTERNS = re.compile(
    r"(?i:bearer)\s+\S+"  # an echoed Authorization header value
    r"|eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"  # a JWT
    r"|\bsk-[\w-]{8,}"  # an OpenAI-style API key
)


def redact(text: str) -> str:
    """Replace anything in a provider's message that looks like a credential."""
    return _SECRET_PATTERNS.sub("[redacted]", text)


def provider_error_text(body: bytes) -> str:
    """Extract the error message from a provider's error body, redacted and truncated.

    OpenAI-compatible servers send `{"error": {"message": ...}}`; others send `{"error": "..."}`,
    `{"message": ...}` or `{"detail": ...}`, or plain text.
    """
    text = ""
    try:
        data = json_loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace")
    else:
        text = _message_of(data)
    text = " ".join(redact(text).split())
    if len(text) > MAX_ERROR_TEXT:
        text = text[: MAX_ERROR_TEXT - 3] + "..."
    return text


def _message_of(data: object) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, Mapping):
        fields = cast("Mapping[str, Any]", data)
        for key in ("error", "message", "detail"):
            value = fields.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, Mapping):
                return _message_of(cast("Mapping[str, Any]", value))
        return json_dumps(fields).decode()
    return json_dumps(data).decode()


def status_error(status: int, body: bytes, *, route: str) -> ProviderError:
    """Return the exception for an HTTP error status from the provider of `route`.

    429 is `ProviderRateLimited`, 401 and 403 are `ProviderAuthError`, 5xx is a retriable
    `ProviderResponseError`, and any other status a non-retriable one. The message carries the
    provider's own error text (redacted, at most `MAX_ERROR_TEXT` characters) and never a request
    header.
    """
    detail = provider_error_text(body) or "no error message"
    if status == 429:
        return ProviderRateLimited(
            f"Route {route!r} was rate-limited by its provider (HTTP 429: {detail}); "
            "retry later or add a fallback route.",
            route=route,
            status_code=status,
        )
    if status in (401, 403):
        return ProviderAuthError(
            f"The provider of route {route!r} rejected the credential (HTTP {status}: {detail}); "
            "check that the route's credential mode matches what the provider accepts.",
            route=route,
            status_code=status,
        )
    if status >= 500:
        return ProviderResponseError(
            f"The provider of route {route!r} failed (HTTP {status}: {detail}); "
            "retry later or add a fallback route.",
            route=route,
            status_code=status,
            retriable=True,
        )
    return ProviderResponseError(
        f"The provider of route {route!r} rejected the request (HTTP {status}: {detail}); "
        "fix the request or the route's model and parameters.",
        route=route,
        status_code=status,
        retriable=False,
    )


def transport_error(error: httpx.HTTPError, *, route: str) -> ProviderError:
    """Return the exception for an httpx error raised while calling the provider of `route`.

    Timeouts, network errors, a server that breaks the protocol and proxy failures are
    `ProviderUnavailable`. A response body that cannot be decoded is a `ProviderResponseError`.
    A request that cannot be sent at all (an invalid header, an unsupported URL) is a
    non-retriable `ProviderError`.
    """
    kind = type(error).__name__
    if isinstance(
        error,
        (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError),
    ):
        failure = "timed out" if isinstance(error, httpx.TimeoutException) else "is unreachable"
        return ProviderUnavailable(
            f"The provider of route {route!r} {failure} ({kind}); "
            "check that the server at the route's base_url is up, or add a fallback route.",
            route=route,
        )
    if isinstance(error, (httpx.DecodingError, httpx.TooManyRedirects)):
        return ProviderResponseError(
            f"The response from the provider of route {route!r} could not be read ({kind}); "
            "check the route's base_url.",
            route=route,
            retriable=False,
        )
    return ProviderError(
        f"The request to route {route!r} could not be sent ({kind}); "
        "check the route's base_url and the credential source.",
        route=route,
        retriable=False,
    )


@functools.cache
def _ssl_context(trust_env: bool) -> ssl.SSLContext:
    # Loading the CA bundle takes tens of milliseconds, so every client shares one context.
    return httpx.create_ssl_context(trust_env=trust_env)


class HttpClients:
    """The pooled httpx clients of one provider instance.

    One `httpx.Client` serves every thread. Async calls use one `httpx.AsyncClient` per event
    loop, because httpx connections belong to the loop that opened them. Each async client
    closes itself when its loop runs `shutdown_asyncgens()`, which `asyncio.run()` and
    `asyncio.Runner` do before closing the loop, so a provider shared by several loops leaks no
    sockets.

    Args:
        timeout: The default timeout in seconds; each request passes its route's timeout.
        limits: Connection pool limits.
        trust_env: Whether to read proxy settings and certificates from the environment.
        headers: Headers sent with every request.
    """

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        limits: httpx.Limits | None = None,
        trust_env: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._timeout = timeout
        self._limits = limits or httpx.Limits(max_connections=1000, max_keepalive_connections=100)
        self._trust_env = trust_env
        self._headers = {"user-agent": _USER_AGENT, **(headers or {})}
        self._lock = threading.Lock()
        self._sync: httpx.Client | None = None
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()
        self._timeouts: dict[float, dict[str, float | None]] = {}

    def timeout_extension(self, seconds: float) -> dict[str, dict[str, float | None]]:
        """Return request extensions that set every httpx timeout to `seconds`."""
        cached = self._timeouts.get(seconds)
        if cached is None:
            cached = httpx.Timeout(seconds).as_dict()
            self._timeouts[seconds] = cached
        return {"timeout": cached}

    @property
    def sync(self) -> httpx.Client:
        """The synchronous client, created on first use."""
        client = self._sync
        if client is None:
            with self._lock:
                client = self._sync
                if client is None:
                    client = httpx.Client(
                        timeout=self._timeout,
                        limits=self._limits,
                        trust_env=self._trust_env,
                        headers=self._headers,
                        follow_redirects=False,
                        verify=_ssl_context(self._trust_env),
                    )
                    self._sync = client
        return client

    async def get_async(self) -> httpx.AsyncClient:
        """Return the async client of the running event loop, creating it on first use."""
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is not None:
            return entry[0]

        client = httpx.AsyncClient(
            timeout=self._timeout,
            limits=self._limits,
            trust_env=self._trust_env,
            headers=self._headers,
            follow_redirects=False,
            verify=_ssl_context(self._trust_env),
        )
        closer = _close_at_loop_shutdown(client)
        # Starting the generator registers it with the loop, whose shutdown_asyncgens() then
        # resumes it and closes the client inside that loop.
        await closer.__anext__()
        self._async[loop] = (client, closer)
        return client

    def close(self) -> None:
        """Close the synchronous client; async clients close with `aclose` or their loop."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async client of the running loop and the synchronous client."""
        entry = self._async.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            client, closer = entry
            await client.aclose()
            await closer.aclose()
        self.close()


async def _close_at_loop_shutdown(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if not client.is_closed:
            logger.debug("Closing an httpx.AsyncClient as its event loop shuts down.")
            await client.aclose()
