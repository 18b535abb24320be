"""What the small local models need that a large hosted one does not: a bounded conversation window.

A long call's conversation is cut back from MAX_ITEMS to the last KEEP_ITEMS items, in steps, so it fits a small
local model's context (4096 tokens) and the prompt's cached prefix changes only once every few turns.
"""

from __future__ import annotations

from livekit.agents import llm

MAX_ITEMS, KEEP_ITEMS = 40, 20


def recent_window(chat_ctx: llm.ChatContext) -> llm.ChatContext:
    """The instructions plus the recent conversation. The cut moves every MAX_ITEMS - KEEP_ITEMS items, not
    every turn, and never leaves a tool result without its call."""
    items = chat_ctx.items
    head = 1 if items and isinstance(items[0], llm.ChatMessage) and items[0].role in ("system", "developer") else 0
    body = items[head:]
    if len(body) < MAX_ITEMS:
        return chat_ctx
    step = MAX_ITEMS - KEEP_ITEMS
    start = (len(body) - KEEP_ITEMS) // step * step
    while start < len(body) and not isinstance(body[start], llm.ChatMessage):
        start += 1
    kept = chat_ctx.copy()
    kept.items = items[:head] + body[start:]
    return kept
