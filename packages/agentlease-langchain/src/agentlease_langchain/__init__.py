"""agentlease for LangChain: a policy-routed chat model and guarded tools.

`SecureChatModel` reaches models only through agentlease routes, with a grant scoped to the
current task on every call. `secure_tool` guards a tool so that every call is checked by the
policy, granted and audited, and a denial reaches the model as an error ``ToolMessage``.
`instrument()` adds the rest of a LangChain run (chains, retrievers, tools and models that
bypass agentlease) to the current task's audit session.
"""

from agentlease_langchain.callbacks import AgentleaseCallbackHandler, Instrumentation, instrument
from agentlease_langchain.chat_models import SecureChatModel
from agentlease_langchain.tools import SecureTool, ToolCallDenied, secure_tool

__all__ = [
    "AgentleaseCallbackHandler",
    "Instrumentation",
    "SecureChatModel",
    "SecureTool",
    "ToolCallDenied",
    "instrument",
    "secure_tool",
]
