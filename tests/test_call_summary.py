"""The after-call summary's prompt and the reading of its answer (the LLM itself: tests/test_call_aftercall.py)."""

from __future__ import annotations

import pytest

from calls.summary import Summary, copied, parse, transcript_text

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


CALL = "Assistant: Thanks for calling Harbor Dental.\nCaller: What are your opening hours?\nAssistant: 9 to 5."


@pytest.mark.parametrize("summary, is_copy", [
    ("What the caller wanted and what the assistant did.", True),  # the instructions, echoed (seen from 0.5B)
    ("Asked whether gluten-free bread is sold on Saturdays; told yes, baked Saturday mornings.", True),  # example
    ("Asked about opening hours; told 9 to 5.", False),
    ("The caller asked about the opening hours and the assistant answered.", False),
    ("Caller hung up after the greeting.", False),
])
def test_a_summary_that_repeats_the_prompt_is_refused(summary, is_copy):
    assert copied(summary, CALL) is is_copy
