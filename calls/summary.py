"""A call's short summary and outcome ("asked about opening hours; answered"), written by the same LLM the calls
use (agent/providers.py: OpenAI, the local endpoint, or another OpenAI-compatible server), after the call.

One plain chat completion, bounded in time and length; any failure gives None (the caller logs one line).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.providers import ProviderChoice

TIMEOUT_S = 60.0  # a busy CPU endpoint can take a while (18 s to a first token seen at load 12 on 2 cores)
MAX_TRANSCRIPT_CHARS = 6000  # the end of a very long call is dropped from the prompt, not the summary's limit
PROMPT = """You write call-log entries for a business's phone receptionist. Read the call and answer in exactly
two lines: "Outcome:" then two to five words (answered, transferred to staff, message taken, not resolved, caller
hung up), and "Summary:" then one short sentence saying what this caller wanted and what the assistant did."""
# One worked example: small local models copy a template's words unless they see it filled in.
EXAMPLE = ("Assistant: Good morning, Bay Bakery.\nCaller: Do you have gluten-free bread on Saturdays?\n"
           "Assistant: Yes, we bake gluten-free loaves every Saturday morning.",
           "Outcome: answered\n"
           "Summary: Asked whether gluten-free bread is sold on Saturdays; told yes, baked Saturday mornings.")
SPEAKERS = {"user": "Caller", "assistant": "Assistant"}


@dataclass(frozen=True)
class Summary:
    summary: str
    outcome: str


def transcript_text(turns: Iterable[Mapping[str, Any]]) -> str:
    """`Caller: ...` / `Assistant: ...` lines of the turns with text (tool turns say which action ran)."""
    lines = []
    for turn in turns:
        role, text = turn.get("role"), (turn.get("text") or "").strip()
        if role in SPEAKERS and text:
            lines.append(f"{SPEAKERS[role]}: {text}")
        elif role == "tool" and turn.get("tool_name"):
            lines.append(f"(the assistant used the {turn['tool_name']} action)")
    return "\n".join(lines)[:MAX_TRANSCRIPT_CHARS]


def parse(reply: str) -> Summary | None:
    """The two labelled lines of the reply; None when the model did not write them."""
    found = {label.lower(): value.strip().strip('"*').strip()
             for label, value in re.findall(r"^\W*(summary|outcome)\W*:\W*?(\w.*)$", reply, re.I | re.M)}
    if not found.get("summary"):
        return None
    return Summary(found["summary"][:500], found.get("outcome", "")[:120].rstrip("."))


async def summarize(turns: Iterable[Mapping[str, Any]], providers: ProviderChoice,
                    timeout: float = TIMEOUT_S) -> Summary | None:
    """The call's summary and outcome; None for a call in which nobody said anything. Raises on a failed or
    malformed answer (ValueError) so that the caller can say which."""
    transcript = transcript_text(turns)
    if not transcript:
        return None
    from openai import AsyncOpenAI

    async with AsyncOpenAI(base_url=providers.base_url, api_key=providers.api_key, timeout=timeout,
                           max_retries=0) as client:
        response = await client.chat.completions.create(
            model=providers.llm_model, temperature=0, max_tokens=120,
            messages=[{"role": "system", "content": PROMPT},
                      {"role": "user", "content": EXAMPLE[0]}, {"role": "assistant", "content": EXAMPLE[1]},
                      {"role": "user", "content": transcript}])
    reply = response.choices[0].message.content or ""
    summary = parse(reply)
    if summary is None:
        raise ValueError(f"the LLM's answer had no 'Summary:' line ({len(reply)} characters)")
    if copied(summary.summary, transcript):
        raise ValueError("the LLM copied the prompt instead of summarizing the call")
    return summary


COMMON = frozenset("caller assistant what that this with from your have about they there when where which would "
                   "could will been were their then than into does also just".split())


def content_words(text: str) -> list[str]:
    return [word for word in re.findall(r"[a-z]+", text.lower()) if len(word) > 3 and word not in COMMON]


def copied(summary: str, transcript: str) -> bool:
    """Whether the summary repeats the prompt's instructions or its example rather than telling this call: none of
    this call's own words, and most of its words are theirs."""
    words, ours = content_words(summary), set(content_words(transcript))
    if not words or any(word in ours for word in words):
        return False
    return any(sum(word in set(content_words(source)) for word in words) >= 0.6 * len(words)
               for source in (PROMPT, " ".join(EXAMPLE)))
