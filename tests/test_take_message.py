"""Taking a message (agent/take_message.py) and the keypad's shortcuts (agent/keypad.py), without a call: the
questions in order, numbers said or keyed and read back, the caller's yes or no read by the real intent layer.
A real call through both: tests/test_call_keypad.py."""

from __future__ import annotations

import pytest

from agent.keypad import describe, parse_keypad
from agent.take_message import (
    ASK_NAME,
    ASK_NUMBER,
    ASK_TEXT,
    RETRY_NUMBER,
    RETRY_TEXT,
    Ask,
    Done,
    TakenMessage,
    ask_caller_id,
    confirm_number,
    next_step,
    read_out,
    spoken_digits,
)
from agent.turn_policy import TurnPolicy
from stack.settings import Settings

pytestmark = pytest.mark.unit


def plain_answer(words: str) -> str | None:
    """Stands in for the intent layer's yes/no (measured on its own below)."""
    first = words.lower().strip(" ,.!").split(" ")[0].strip(",.")
    return {"yes": "yes", "yeah": "yes", "no": "no", "nope": "no"}.get(first)


def step(*answers: str, caller: str | None = None) -> Ask | Done:
    return next_step(list(answers), caller_number=caller, answer=plain_answer)


@pytest.mark.parametrize("words, digits", [
    ("555-0123", "5550123"),
    ("Five five five, oh one two three.", "5550123"),
    ("It's 555 0123", "5550123"),
    ("double two, three four five six", "223456"),
    ("plus one 555 867 5309", "15558675309"),
    ("+1 555 867 5309", "+15558675309"),
    ("My name is Ana", ""),
])
def test_phone_numbers_are_read_from_words_and_digits(words, digits):
    assert spoken_digits(words) == digits


def test_numbers_are_read_back_in_groups():
    assert read_out("5550123") == "5 5 5, 0 1 2 3"
    assert read_out("5558675309") == "5 5 5, 8 6 7, 5 3 0 9"
    assert read_out("+15558675309") == "plus 1, 5 5 5, 8 6 7, 5 3 0 9"
    assert read_out("0123") == "0 1 2 3"


def test_a_message_from_a_caller_without_caller_id():
    assert step() == Ask(ASK_NAME)
    assert step("Ana Lima") == Ask(ASK_NUMBER)
    assert step("Ana Lima", "555 0123") == Ask(confirm_number("5550123"))
    assert step("Ana Lima", "555 0123", "Yes.") == Ask(ASK_TEXT)
    assert step("Ana Lima", "555 0123", "Yes.", "Please call me about the wedding cake.") == Done(TakenMessage(
        caller_name="Ana Lima", callback_number="5550123", text="Please call me about the wedding cake."))


def test_the_number_called_from_is_offered_first():
    assert step("Ana", caller="+15550123") == Ask(ask_caller_id("+15550123"))
    assert "ending in 0 1 2 3" in ask_caller_id("+15550123")
    assert step("Ana", "Yes, that one.", caller="+15550123") == Ask(ASK_TEXT)
    assert step("Ana", "Yes, that one.", "Call me.", caller="+15550123").message.callback_number == "+15550123"
    assert step("Ana", "No.", caller="+15550123") == Ask(ASK_NUMBER)
    # a "no" that carries the number goes straight to the read-back
    assert step("Ana", "No, call me on 555 9876.", caller="+15550123") == Ask(confirm_number("5559876"))
    assert step("Ana", "Hmm?", caller="+15550123") == Ask(ask_caller_id("+15550123"))  # asked again


def test_a_wrong_read_back_is_corrected_or_asked_again():
    assert step("Ana", "555 0123", "No, it's 555 0124.") == Ask(confirm_number("5550124"))
    assert step("Ana", "555 0123", "No.") == Ask(ASK_NUMBER)
    assert step("Ana", "555 0123", "Maybe?") == Ask(confirm_number("5550123"))  # neither: asked again


def test_a_caller_who_gives_no_number_still_leaves_the_message():
    assert step("Ana", "I'd rather not") == Ask(RETRY_NUMBER)
    assert step("Ana", "no", "no", "no") == Ask(ASK_TEXT)
    done = step("Ana", "no", "no", "no", "The bread was great.")
    assert done == Done(TakenMessage(caller_name="Ana", callback_number="", text="The bread was great."))
    assert step("Ana", "555 0123", "No.", "555 0123", "No.", "555 0123", "No.") == Ask(ASK_TEXT)


def test_an_empty_message_is_asked_for_again():
    assert step("Ana", "555 0123", "yes", "  ") == Ask(RETRY_TEXT)


def test_keyed_digits_are_an_answer_like_words():
    assert step("Ana", "5550123") == Ask(confirm_number("5550123"))


def test_the_intent_layer_reads_the_callers_yes_and_no():
    policy = TurnPolicy.load(Settings.of())
    assert [policy.yes_or_no(words) for words in ("Yes, that's right.", "Yep.", "That's correct.")] == ["yes"] * 3
    assert [policy.yes_or_no(words) for words in ("No, that's wrong.", "Nope.", "No.")] == ["no"] * 3
    assert policy.yes_or_no("What time do you close on Friday?") is None


def test_keypad_shortcuts_are_read_with_one_clear_line_for_a_mistake():
    assert parse_keypad("0=person, 9=hours") == {"0": "person", "9": "hours"}
    assert parse_keypad(" 1 = Message ; * = repeat ") == {"1": "message", "*": "repeat"}
    assert parse_keypad("") == {}
    assert describe(parse_keypad("0=person, 9=hours")) == "Press 0 to speak to a person, or 9 for our opening hours."
    for bad, says in (("0=pizza", "no keypad action"), ("10=hours", "one key of"), ("0 person", "one key of"),
                      ("0=hours, 0=person", "given twice")):
        with pytest.raises(ValueError, match=says) as raised:
            parse_keypad(bad)
        assert "\n" not in str(raised.value)
