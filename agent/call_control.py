"""Recognises the caller requests a phone line must never miss: ending the call, asking for a person, asking
the time (or whether the business is open now), and asking the agent to wait.

Small local models often answer "Goodbye!" without calling end_call. When the caller's words are clear, the
agent makes the LLM call the right tool (OpenAI's forced `tool_choice`); everything else stays the model's call.
"""

from __future__ import annotations

import re

WAIT_REQUEST = re.compile(r"\b(hold on|hang on|one (second|sec|moment|minute)|just a (second|sec|moment|minute)|"
                          r"wait|give me a (second|sec|moment|minute)|bear with me)\b", re.I)
GOODBYE = re.compile(r"\b(bye|goodbye|good bye|bye bye|hang up|end the call|that'?s all(?: i needed)?)\b", re.I)
HUMAN_REQUEST = re.compile(
    r"\b(speak|talk|chat)\s+(to|with)\s+(a|an|some|the)?\s*(real\s+)?(person|human|someone|somebody|agent|"
    r"operator|representative|manager|colleague)\b|\b(real|live)\s+(person|human)\b|\b(transfer|connect|put)\s+me\b",
    re.I)


TIME_QUESTION = re.compile(r"\bwhat time is it\b|\bwhat'?s the (time|date)\b|\bwhat (day|date) is (it|today)\b|"
                           r"\b(are you|is the (office|shop|store)|is it) open (now|right now|at the moment)\b|"
                           r"\bopen right now\b", re.I)
QUESTION = re.compile(r"\b(what|when|where|how|why|who|which|do you|does|are you|are there|is there|is it)\b", re.I)


def asks_question(text: str) -> bool:
    """Whether the words ask something, besides any request to wait ("hang on, how much is a cleaning?")."""
    return bool(QUESTION.search(WAIT_REQUEST.sub(" ", text)))


def caller_says_goodbye(text: str) -> bool:
    return bool(GOODBYE.search(text))


def caller_is_waiting(text: str) -> bool:
    return bool(WAIT_REQUEST.search(text)) and not caller_says_goodbye(text)


def requested_tool(text: str) -> str | None:
    """The tool the caller's words clearly ask for, if any."""
    if caller_is_waiting(text) and not asks_question(text):
        return None
    if HUMAN_REQUEST.search(text):
        return "transfer_to_human"
    if caller_says_goodbye(text):
        return "end_call"
    if TIME_QUESTION.search(text):  # a model without the clock makes the time up
        return "get_current_time"
    return None
