"""agentlease for LlamaIndex: secured LLM calls, guarded tools, data-class labels and audit.

`SecureLLM` replaces a provider LLM, `secure_tool` guards tools, `DataClassLabeler` makes
routing follow the data class of retrieved documents, and `instrument()` adds the rest of a
LlamaIndex run to the task's audit session::

    import agentlease
    from agentlease_llamaindex import SecureLLM, instrument, secure_tool

    instrument()
    llm = SecureLLM("default")
    with agentlease.task("support", data_class="internal"):
        llm.complete("Hello")
"""

from agentlease_llamaindex.instrumentation import (
    AuditEventHandler,
    AuditSpanHandler,
    Instrumentation,
    instrument,
)
from agentlease_llamaindex.llms import SecureLLM
from agentlease_llamaindex.postprocessors import DataClassLabeler, DataClassRetriever
from agentlease_llamaindex.tools import (
    SecureFunctionTool,
    SecureTool,
    denial_message,
    secure_function_tool,
    secure_tool,
)

__all__ = [
    "AuditEventHandler",
    "AuditSpanHandler",
    "DataClassLabeler",
    "DataClassRetriever",
    "Instrumentation",
    "SecureFunctionTool",
    "SecureLLM",
    "SecureTool",
    "denial_message",
    "instrument",
    "secure_function_tool",
    "secure_tool",
]
