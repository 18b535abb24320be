"""The intent layer on the held-out labelled set (tests/data/caller_intents.csv): trained only on the exemplar bank,
it must never end or transfer a call the caller did not ask to end or transfer, and must act on at least 95 % of the
real requests (at once, or after asking "shall I end the call?")."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.intents import ACTIONS, EXEMPLARS, default_classifier, read_labelled
from agent.turn_policy import ACT_THRESHOLD, CONFIRM_THRESHOLD

pytestmark = pytest.mark.models  # loads the embedding model
HELD_OUT = Path(__file__).parent / "data" / "caller_intents.csv"


@pytest.fixture(scope="module")
def held_out():
    rows = read_labelled(HELD_OUT)
    bank = {text.lower() for text, _ in read_labelled(EXEMPLARS)}
    return [(text, intent) for text, intent in rows if text.lower() not in bank]


@pytest.fixture(scope="module")
def predictions(held_out):
    classifier = default_classifier()
    return [classifier.classify(text) for text, _ in held_out]


def test_the_held_out_set_is_large_and_unseen(held_out):
    assert len(held_out) >= 300
    assert {intent for _, intent in held_out} >= set(ACTIONS) | {"wait", "hours", "time", "question", "other"}


@pytest.mark.parametrize("action", ACTIONS)
def test_no_call_is_ended_or_transferred_unasked(held_out, predictions, action):
    wrong = [(text, truth, round(p.confidence, 2)) for (text, truth), p in zip(held_out, predictions)
             if p.name == action and p.confidence >= ACT_THRESHOLD[action] and truth != action]
    assert wrong == []


@pytest.mark.parametrize("action", ACTIONS)
def test_real_requests_are_acted_on(held_out, predictions, action):
    meant = [(text, p) for (text, truth), p in zip(held_out, predictions) if truth == action]
    acted = [text for text, p in meant if p.name == action and p.confidence >= CONFIRM_THRESHOLD]
    missed = [text for text, p in meant if text not in acted]
    assert len(acted) / len(meant) >= 0.95, missed


@pytest.mark.parametrize("words", [
    "Please don't hang up, I have one more question.",
    "No need to transfer me, I just want your address.",
    "Put me down for two loaves of sourdough.",
    "Hang on, how much is a custom cake?",
])
def test_the_issues_examples_are_not_actions(words):
    intent = default_classifier().classify(words)
    assert intent.name not in ACTIONS or intent.confidence < CONFIRM_THRESHOLD, intent


def test_requests_to_leave_a_message_start_one(held_out, predictions):
    """Taking a message ends nothing, so it starts without a question: most requests must start it, and turns of
    other intents almost never."""
    from agent.turn_policy import MESSAGE_THRESHOLD

    taken = [p.name == "message" and p.confidence >= MESSAGE_THRESHOLD for p in predictions]
    meant = [truth == "message" for _, truth in held_out]
    missed = [text for (text, _), t, m in zip(held_out, taken, meant) if m and not t]
    wrong = [(text, truth) for (text, truth), t, m in zip(held_out, taken, meant) if t and not m]
    assert sum(meant) >= 30
    assert (sum(meant) - len(missed)) / sum(meant) >= 0.8, missed
    assert len(wrong) <= 2, wrong
