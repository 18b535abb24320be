"""Turns the tool calls Qwen writes as text into OpenAI `tool_calls`, while plain text still streams at once.

Qwen writes a call as `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, as bare JSON in the content,
or (the 1.5B model) with doubled braces `{{...}}`, sometimes inside a ```json fence. llama-cpp-python leaves all
of these in `content`.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

import json_repair

# Qwen's own tag first; the small models also improvise the others.
OPEN_TAGS = ("<tool_call>", "<tools>", "<tool>", "<function_call>", "<functioncall>")
TAG = re.compile(r"</?(tool_call|tools|tool|function_call|functioncall)>")
FENCE = "```"


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # a JSON object, as OpenAI sends it
    id: str


def _could_become_tag(text: str) -> bool:
    return any(tag.startswith(text) for tag in OPEN_TAGS)


def _held_suffix(text: str) -> int:
    """How many trailing characters could be the start of an opening tag (held back until we know)."""
    for size in range(min(max(map(len, OPEN_TAGS)) - 1, len(text)), 0, -1):
        if _could_become_tag(text[-size:]):
            return size
    return 0


def _first_tag(text: str) -> int:
    found = [i for i in (text.find(tag) for tag in OPEN_TAGS) if i >= 0]
    return min(found) if found else -1


class ToolCallParser:
    """Feed it the model's text deltas; it returns text to stream now, and the calls once the output ends."""

    def __init__(self, tool_names: set[str], parameters: dict[str, set[str]] | None = None):
        self.tool_names = tool_names
        self.parameters = parameters
        self._pending = ""  # text not yet streamed
        self._call_text = ""  # text that looks like a tool call
        self._in_call = False
        self._streamed_any = False

    def feed(self, delta: str) -> str:
        if not self.tool_names:
            return delta
        if self._in_call:
            self._call_text += delta
            return ""
        self._pending += delta
        if not self._streamed_any:
            head = self._pending.lstrip()
            if head.startswith(("{", FENCE, *OPEN_TAGS)):  # the whole answer is a call (maybe in a fence)
                self._in_call, self._call_text, self._pending = True, head, ""
                return ""
            if not head or _could_become_tag(head) or FENCE.startswith(head):  # undecided yet
                return ""
        index = _first_tag(self._pending)
        if index >= 0:
            text, self._call_text, self._pending = self._pending[:index], self._pending[index:], ""
            self._in_call = True
            return self._emit(text)
        keep = _held_suffix(self._pending)
        text = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(self._pending) - keep:]
        return self._emit(text)

    def _emit(self, text: str) -> str:
        if text.strip():
            self._streamed_any = True
        return text

    def has_complete_call(self) -> bool:
        """Whether a whole call to a known tool has arrived (the rest of the output can then be skipped)."""
        return self._in_call and bool(parse_tool_calls(self._call_text, self.tool_names, repair=False))

    def finish(self) -> tuple[str, list[ToolCall]]:
        """Text still held back, and the calls found. Output that looked like a call but names no known tool is
        dropped: read aloud, raw JSON would only confuse the caller."""
        calls = parse_tool_calls(self._call_text, self.tool_names, self.parameters) if self._in_call else []
        text = self._pending
        if self._in_call and not calls and not self._call_text.lstrip().startswith(("{", *OPEN_TAGS)):
            text += self._call_text.replace(FENCE, "")
        return text, calls


def parse_tool_calls(text: str, tool_names: set[str], parameters: dict[str, set[str]] | None = None,
                     repair: bool = True) -> list[ToolCall]:
    """The calls in `text` to known tools. Arguments a tool does not declare (in `parameters`) are dropped: small
    models invent some, and strict tools reject them."""
    calls = []
    for obj in _json_objects(TAG.sub(" ", text), repair):
        name = obj.get("name") or (obj.get("function") or {}).get("name")
        arguments = obj.get("arguments", obj.get("parameters", (obj.get("function") or {}).get("arguments", {})))
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except json.JSONDecodeError:
                continue
        if name in tool_names and isinstance(arguments, dict):
            if parameters is not None and name in parameters:
                arguments = {key: value for key, value in arguments.items() if key in parameters[name]}
            calls.append(ToolCall(name=name, arguments=json.dumps(arguments), id=f"call_{uuid.uuid4().hex[:24]}"))
    return calls


def _json_objects(text: str, repair: bool = True):
    """Every top-level JSON object in `text`; a doubled-brace object `{{...}}` counts as the object inside."""
    decoder = json.JSONDecoder()
    index = 0
    while (start := text.find("{", index)) >= 0:
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            inner = _undouble(text, start)
            if inner is None and repair:
                # Small models sometimes stop before the last brace: json_repair closes what is open.
                repaired = json_repair.loads(text[start:])
                if isinstance(repaired, dict) and "name" in repaired:
                    yield repaired
                    return
            if inner is None:
                index = start + 1
                continue
            obj, end = inner
        if isinstance(obj, dict):
            yield obj
        index = end


def _undouble(text: str, start: int):
    """`{{"name": ...}}` -> the inner object, if that is what stands at `start`."""
    if not text.startswith("{{", start):
        return None
    try:
        obj, end = json.JSONDecoder().raw_decode(text, start + 1)
    except json.JSONDecodeError:
        return None
    if text.startswith("}", end):
        end += 1
    return obj, end
