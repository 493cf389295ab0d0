"""Helpers for testing code that uses agentlease, offline: a scripted model server and a clock.

`ModelServer` is a real HTTP/1.1 server on the loopback interface that speaks OpenAI chat
completions, streamed or not. Tests queue exact replies with `ModelServer.script`. When the
queue is empty, `default_reply` responds well enough for tool-calling agents, structured output
and LangChain's standard chat model tests:

```python
from agentlease.testing import ModelServer, Reply

with ModelServer() as server:
    server.script(Reply.text("Hello!"), Reply.error(429))
    ...  # point a route's base_url at server.url
```
"""

from agentlease.testing._replies import FrozenClock, RecordedRequest, Reply, Responder
from agentlease.testing._responder import default_reply
from agentlease.testing._server import ModelServer

__all__ = [
    "FrozenClock",
    "ModelServer",
    "RecordedRequest",
    "Reply",
    "Responder",
    "default_reply",
]
