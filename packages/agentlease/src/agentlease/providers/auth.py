"""Credential injection: an `httpx.Auth` that calls a token source for each request's credential.

No provider object, client or framework model holds a credential. `RouteAuth` calls its token
source when httpx sends the request, so a grant minted for the current task, an exchanged token
or an API key read from the environment is used for exactly that request.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator

import httpx

from agentlease.errors import ConfigurationError
from agentlease.routing import Route

__all__ = ["RouteAuth", "api_key_source"]


class RouteAuth(httpx.Auth):
    """Attach `Authorization: Bearer <credential>` to each request, from a token source.

    Args:
        token_source: Returns the credential. It is called once per request, at the moment
            httpx sends it, and whatever it raises propagates to the caller unchanged.

    Raises:
        ConfigurationError: The token source returned an empty credential, or one with
            whitespace, control or non-ASCII characters that could split the header.

    Example:
        ```python
        auth = RouteAuth(lambda: "my-token")
        ```
    """

    def __init__(self, token_source: Callable[[], str]) -> None:
        self._token_source = token_source

    def __repr__(self) -> str:
        return f"RouteAuth(token_source={self._token_source!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the Authorization header of `request` from a fresh credential."""
        token = self._token_source()
        if not token or not token.isascii() or not token.isprintable() or " " in token:
            raise ConfigurationError(
                "The token source returned an empty credential or one with whitespace, control "
                "or non-ASCII characters (value not shown); fix the credential source."
            )
        request.headers["Authorization"] = "Bearer " + token
        yield request


def api_key_source(route: Route) -> Callable[[], str]:
    """Return a token source that reads the API key of an `api_key` route from the environment.

    The variable named by `route.api_key_env` is read at each call, so a rotated key takes
    effect on the next request.

    Raises:
        ConfigurationError: The route names no variable. The returned source raises it too when
            the variable is missing or empty; the message names the variable, never its value.
    """
    variable = route.api_key_env
    if not variable:
        raise ConfigurationError(
            f"Route {route.name!r} sets no api_key_env; "
            "name the environment variable that holds its API key."
        )
    name = route.name

    def read_api_key() -> str:
        value = os.environ.get(variable, "").strip()
        if not value:
            raise ConfigurationError(
                f"Environment variable {variable} for the API key of route {name!r} is missing "
                "or empty; set it before calling the route."
            )
        return value

    return read_api_key
