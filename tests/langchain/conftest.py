"""Fixtures of the LangChain adapter tests.

LangChain's standard test classes build their chat model from properties, which cannot use
fixtures, so the URL of the session's local model server reaches them through the
environment variable `SERVER_URL_ENV`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from agentlease.testing import ModelServer

SERVER_URL_ENV = "AGENTLEASE_LANGCHAIN_TEST_SERVER_URL"


@pytest.fixture(scope="session")
def server_url_env(model_server: ModelServer) -> Iterator[str]:
    """Publish the local model server's URL in `SERVER_URL_ENV` for the whole session."""
    os.environ[SERVER_URL_ENV] = model_server.url
    try:
        yield model_server.url
    finally:
        os.environ.pop(SERVER_URL_ENV, None)
