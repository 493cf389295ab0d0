"""Tool functions that take the workflow Context.

NOTE: this module has no ``from __future__ import annotations`` on purpose. LlamaIndex finds
the Context parameter by comparing the annotation object with `Context`, so a string
annotation hides it, with or without agentlease.
"""

from llama_index.core.workflow import Context


async def remember(ctx: Context, fact: str) -> str:
    """Remember a fact in the workflow state and return it."""
    await ctx.store.set("fact", fact)
    return f"remembered {fact}"
