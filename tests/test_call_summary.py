"""The after-call summary's prompt and the reading of its answer (the LLM itself: tests/test_call_aftercall.py)."""

from __future__ import annotations

import pytest

from calls.summary import Summary, parse, transcript_text

pytestmark = pytest.mark.unit


def test_the_transcript_names_speakers_and_actions():
    turns = [{"role": "assistant", "text": "Hello, Example Company."},
             {"role": "user", "text": "When do you open?"},
             {"role": "tool", "text": "", "tool_name": "end_call"},
             {"role": "user", "text": "  "}]
    assert transcript_text(turns) == ("Assistant: Hello, Example Company.\nCaller: When do you open?\n"
                                      "(the assistant used the end_call action)")
    assert transcript_text([]) == ""


@pytest.mark.parametrize("reply, expected", [
    ("Summary: Asked about opening hours.\nOutcome: answered.", Summary("Asked about opening hours.", "answered")),
    ("**Summary:** Wanted a person\n**Outcome**: transferred to staff",
     Summary("Wanted a person", "transferred to staff")),
    ("summary: Called and hung up", Summary("Called and hung up", "")),
    ("I cannot help with that.", None),
])
def test_the_answer_is_read_from_its_two_lines(reply, expected):
    assert parse(reply) == expected
