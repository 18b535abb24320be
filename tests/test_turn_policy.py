"""The turn policy's decisions, with a stand-in classifier (the real one is measured in test_intents.py): irreversible
actions only on a confident intent, a question first when unsure, the caller's yes or no deciding it."""

from __future__ import annotations

from datetime import datetime

import pytest

from agent.business import BusinessProfile
from agent.intents import Intent
from agent.knowledge import Entry, KnowledgeBase
from agent.turn_policy import (
    ASK_END,
    ASK_MESSAGE,
    ASK_TRANSFER,
    CANT_ARRANGE,
    NOT_ENDING,
    OKAY,
    PARDON,
    PARDON_THRESHOLD,
    PARDON_THRESHOLD_FREE_ANSWER,
    STILL_UNCLEAR,
    SURE_MATCH,
    WAIT_REPLY,
    YOURE_WELCOME,
    Act,
    Answer,
    Say,
    Turn,
    TurnPolicy,
    facts_message,
    last_said,
)

pytestmark = pytest.mark.unit


class StandInClassifier:
    def __init__(self, intents: dict[str, Intent]) -> None:
        self.intents = intents

    def embed(self, text):
        return None

    def classify(self, text, *, vector=None):
        return self.intents.get(text, Intent("other", 0.9))


class StandInKnowledge(KnowledgeBase):
    def __init__(self, answers: dict[str, str], *, score: float = 1.0) -> None:
        super().__init__([])
        self.answers = answers
        self.score = score

    def search(self, text, *, limit=3, query_vector=None):
        from agent.knowledge import Match

        return [Match(entry=Entry(id="x", questions=(text,), answer=self.answers[text]), score=self.score)] \
            if text in self.answers else []


def policy(intents: dict[str, Intent], answers: dict[str, str] | None = None, **profile) -> TurnPolicy:
    profile = BusinessProfile(opening_hours="Mo-Fr 09:00-17:00", transfer_number="+15550199", **profile)
    return TurnPolicy(profile=profile, classifier=StandInClassifier(intents), knowledge=StandInKnowledge(answers or {}),
                      now=lambda zone: datetime(2026, 11, 28, 10, 0, tzinfo=zone))  # a Saturday


def said(*texts: str) -> list[Turn]:
    return [Turn("assistant" if i % 2 else "user", t) for i, t in enumerate(texts)]


def test_a_confident_goodbye_ends_the_call():
    assert policy({"bye": Intent("end_call", 0.97)}).decide(said("bye")) == Act("end_call", Intent("end_call", 0.97))


def test_an_unsure_goodbye_is_asked_about_and_yes_ends_the_call():
    rules = policy({"ok then": Intent("end_call", 0.5), "yes": Intent("yes", 0.9), "no": Intent("no", 0.9)})
    assert rules.decide(said("ok then")) == Say(ASK_END, Intent("end_call", 0.5))
    assert isinstance(rules.decide(said("ok then", ASK_END, "yes")), Act)
    assert rules.decide(said("ok then", ASK_END, "no")).text == NOT_ENDING


def test_a_yes_or_no_without_a_question_ends_nothing():
    rules = policy({"yes": Intent("yes", 0.9), "no": Intent("no", 0.9)})
    assert rules.decide(said("hello", "Hi, how can I help?", "yes")) == Say(OKAY, Intent("yes", 0.9))
    assert rules.decide(said("hello", "Hi, how can I help?", "no")) == Say(OKAY, Intent("no", 0.9))


def test_thanks_get_youre_welcome_and_the_callers_answer_decides_the_end():
    rules = policy({"thanks": Intent("thanks", 0.9), "no": Intent("no", 0.9), "yes": Intent("yes", 0.9)})
    assert rules.decide(said("thanks")) == Say(YOURE_WELCOME, Intent("thanks", 0.9))
    assert YOURE_WELCOME.endswith(ASK_END)
    assert rules.decide(said("thanks", YOURE_WELCOME, "no")).text == NOT_ENDING
    assert rules.decide(said("thanks", YOURE_WELCOME, "yes")) == Act("end_call", Intent("yes", 0.9))


def test_a_caller_who_asks_to_stay_on_the_line_is_told_so_and_nothing_ends():
    rules = policy({"don't hang up": Intent("stay", 0.9)})
    assert rules.decide(said("don't hang up")) == Say(NOT_ENDING, Intent("stay", 0.9))
    assert isinstance(rules.allows("end_call", said("don't hang up")), Answer)


def test_a_weak_action_intent_is_not_acted_on_or_asked_about():
    assert isinstance(policy({"hmm": Intent("transfer", 0.2)}).decide(said("hmm")), Answer)


def test_an_unsure_transfer_is_offered_and_yes_transfers():
    rules = policy({"manager?": Intent("transfer", 0.6), "yes": Intent("yes", 0.9)})
    assert rules.decide(said("manager?")).text == ASK_TRANSFER
    assert rules.decide(said("manager?", ASK_TRANSFER, "yes")).tool == "transfer_to_human"


def test_waiting_gets_words():
    assert policy({"hold on": Intent("wait", 0.9)}).decide(said("hold on")).text == WAIT_REPLY


def test_what_did_you_say_gets_the_last_reply_again():
    intents = {"what?": Intent("repeat", 0.9), "what was the address?": Intent("repeat", 0.9),
               "yes": Intent("yes", 0.9)}
    rules = policy(intents, {"what was the address?": "We're at 14 Birch Lane."})
    assert rules.decide(said("hours?", "We're open Monday to Friday.", "what?")) == \
        Say("We're open Monday to Friday.", Intent("repeat", 0.9))
    assert rules.decide(said("what?")).text == rules.profile.greeting_text
    # A question said again is still the one the caller's yes answers.
    assert rules.decide(said("ok then", ASK_END, "what?", ASK_END, "yes")).tool == "end_call"
    # "What did you say the address was?" names what it wants: the entry that answers it.
    assert rules.decide(said("hi", "How can I help?", "what was the address?")).text == "We're at 14 Birch Lane."


def test_a_request_only_the_staff_can_act_on_gets_a_colleague_or_a_message_not_a_promise():
    intents = {"book me in": Intent("request", 0.9), "order a cake": Intent("request", 0.9),
               "yes": Intent("yes", 0.9)}
    rules = policy(intents, {"order a cake": "Custom cakes need two days' notice."})
    reply = rules.decide(said("book me in")).text
    assert reply == f"{CANT_ARRANGE} {ASK_TRANSFER}"
    assert rules.decide(said("book me in", reply, "yes")).tool == "transfer_to_human"
    assert rules.decide(said("order a cake")).text == "Custom cakes need two days' notice."  # the business's answer
    alone = TurnPolicy(profile=BusinessProfile(), classifier=StandInClassifier(intents), knowledge=StandInKnowledge({}))
    reply = alone.decide(said("book me in")).text
    assert reply.endswith(ASK_MESSAGE)
    assert alone.decide(said("book me in", reply, "yes")).tool == "take_message"


def test_hours_are_computed_not_guessed():
    decision = policy({"open on sunday?": Intent("hours", 0.9)}).decide(said("open on sunday?"))
    assert isinstance(decision, Say) and "closed" in decision.text.lower(), decision


def test_a_request_for_a_closed_day_hears_the_closure_first():
    rules = policy({"can I come by on sunday?": Intent("question", 0.9),
                    "can I come by on friday?": Intent("question", 0.9)})
    decision = rules.decide(said("can I come by on sunday?"))
    assert isinstance(decision, Say) and "closed" in decision.text.lower(), decision
    assert "closed" not in rules.decide(said("can I come by on friday?")).text.lower()  # open then: no closure


def test_a_question_nothing_answers_gets_i_dont_know_and_a_colleague():
    decision = policy({"price of a unicorn?": Intent("question", 0.9)}).decide(said("price of a unicorn?"))
    assert isinstance(decision, Say) and "don't have that information" in decision.text
    assert decision.text.endswith(ASK_TRANSFER)  # so the caller's "yes" transfers them


def test_without_a_colleague_it_offers_a_message_and_yes_takes_one():
    rules = TurnPolicy(profile=BusinessProfile(), knowledge=StandInKnowledge({}), classifier=StandInClassifier(
        {"q": Intent("question", 0.9), "yes": Intent("yes", 0.9), "no": Intent("no", 0.9)}))
    offer = rules.decide(said("q")).text
    assert ASK_TRANSFER not in offer and offer.endswith(ASK_MESSAGE)
    assert rules.decide(said("q", offer, "yes")).tool == "take_message"
    assert rules.decide(said("q", offer, "no")).text == OKAY


def test_the_keypads_hours_are_the_computed_week():
    week = "We're open Monday to Friday from 9 AM to 5 PM, and closed Saturday and Sunday."
    assert policy({}).hours_sentence() == week
    assert TurnPolicy(profile=BusinessProfile(business_hours="by appointment"), classifier=StandInClassifier({}),
                      knowledge=StandInKnowledge({})).hours_sentence() == "Our opening hours are by appointment."


def test_a_question_gets_the_businesss_own_answer():
    rules = policy({"parking?": Intent("question", 0.9)}, {"parking?": "Free parking behind."})
    decision = rules.decide(said("parking?"))
    assert decision == Say("Free parking behind.", Intent("question", 0.9))


def test_an_entry_barely_relevant_is_read_with_an_offer_of_a_colleague_and_yes_transfers():
    intents = {"dog inside?": Intent("question", 0.9), "yes": Intent("yes", 0.9), "no": Intent("no", 0.9)}
    seating = {"dog inside?": "We have twelve seats inside."}
    with_colleague = BusinessProfile(transfer_number="+15550199")
    for profile, offer in ((with_colleague, ASK_TRANSFER), (BusinessProfile(), ASK_MESSAGE)):
        unsure = TurnPolicy(profile=profile, classifier=StandInClassifier(intents),
                            knowledge=StandInKnowledge(seating, score=SURE_MATCH - 0.01))
        reply = unsure.decide(said("dog inside?")).text
        assert reply.startswith("We have twelve seats inside. If that's not what you asked, "), reply
        assert reply.lower().endswith(offer.lower()), reply
        assert unsure.decide(said("dog inside?", reply, "yes")).tool == \
            ("transfer_to_human" if offer == ASK_TRANSFER else "take_message")
        assert unsure.decide(said("dog inside?", reply, "no")).text == OKAY
        sure = TurnPolicy(profile=profile, classifier=StandInClassifier(intents),
                          knowledge=StandInKnowledge(seating, score=SURE_MATCH))
        assert sure.decide(said("dog inside?")).text == "We have twelve seats inside."


def test_any_turn_an_entry_answers_gets_that_answer():
    rules = policy({"I want a cake": Intent("other", 0.9)}, {"I want a cake": "Cakes from 45 dollars."})
    assert rules.decide(said("I want a cake")) == Say("Cakes from 45 dollars.", Intent("other", 0.9))


def test_other_turns_go_to_the_llm_and_it_phrases_facts_only_when_asked_to():
    assert policy({"hello": Intent("other", 0.9)}).decide(said("hello")) == Answer((), Intent("other", 0.9))
    rules = TurnPolicy(profile=BusinessProfile(), classifier=StandInClassifier({"cake?": Intent("question", 0.9)}),
                       knowledge=StandInKnowledge({"cake?": "Cakes from 45 dollars."}), verbatim_answers=False)
    decision = rules.decide(said("cake?"))
    assert decision == Answer(("Cakes from 45 dollars.",), Intent("question", 0.9))
    assert "Cakes from 45 dollars." in facts_message(decision.facts)
    assert facts_message(()) is None  # nothing to add: no note for the model to read out


def test_in_another_language_fixed_sentences_go_through_the_llm():
    decision = policy({"espera": Intent("wait", 0.9)}, agent_language="es").decide(said("espera"))
    assert decision == Answer((WAIT_REPLY,), Intent("wait", 0.9))


def test_the_llms_own_end_call_is_refused_unless_the_caller_meant_it():
    rules = policy({"don't hang up": Intent("other", 0.9), "bye": Intent("end_call", 0.95)})
    assert isinstance(rules.allows("end_call", said("don't hang up")), Answer)
    assert isinstance(rules.allows("end_call", said("bye")), Act)


def heard(*turns: tuple[str, float | None]) -> list[Turn]:
    return [Turn("assistant" if i % 2 else "user", t, c if i % 2 == 0 else None) for i, (t, c) in enumerate(turns)]


def test_a_turn_the_stt_was_unsure_of_is_asked_again_not_acted_on():
    rules = policy({"bye": Intent("end_call", 0.97)}, {"do you have sourdough?": "Yes, every day."})
    unsure = PARDON_THRESHOLD - 0.05
    assert rules.decide(heard(("bye", unsure))).text == PARDON
    assert isinstance(rules.allows("end_call", heard(("bye", unsure))), Answer)  # no hang-up on a garble
    assert rules.decide(heard(("do you have sourdough?", unsure))).text == PARDON
    assert isinstance(rules.decide(heard(("bye", PARDON_THRESHOLD + 0.05))), Act)
    assert rules.decide(heard(("do you have sourdough?", None))).text == "Yes, every day."  # typed: no score


def test_twice_unclear_offers_a_colleague_or_a_message():
    unsure = PARDON_THRESHOLD - 0.1
    twice = heard(("mumble", unsure), (PARDON, None), ("mumble again", unsure))
    with_colleague = policy({}).decide(twice).text
    assert with_colleague.startswith(STILL_UNCLEAR) and with_colleague.endswith(ASK_TRANSFER)
    without = TurnPolicy(profile=BusinessProfile(), knowledge=StandInKnowledge({}),
                         classifier=StandInClassifier({})).decide(twice).text
    assert without.startswith(STILL_UNCLEAR) and without.endswith(ASK_MESSAGE)
    # heard this time: decided as any turn (here: to the LLM)
    assert isinstance(policy({}).decide(heard(("mumble", unsure), (PARDON, None), ("hello there", 0.9))), Answer)


def test_a_free_answer_needs_a_surer_hearing_than_a_fact():
    rules = policy({}, {"do you have sourdough?": "Yes, every day."})
    between = (PARDON_THRESHOLD + PARDON_THRESHOLD_FREE_ANSWER) / 2
    assert rules.decide(heard(("hello there how are you", between))).text == PARDON  # would go to the LLM
    assert rules.decide(heard(("do you have sourdough?", between))).text == "Yes, every day."


def test_an_answer_repeated_after_a_pardon_answers_the_question_before_it():
    rules = policy({"ok then": Intent("end_call", 0.5), "yes": Intent("yes", 0.9)})
    unsure, sure = PARDON_THRESHOLD - 0.1, 0.9
    assert rules.decide(heard(("ok then", sure), (ASK_END, None), ("yes", unsure))).text == PARDON
    assert isinstance(rules.decide(heard(("ok then", sure), (ASK_END, None), ("yes", unsure), (PARDON, None),
                                         ("yes", sure))), Act)


def test_last_said_is_what_the_assistant_said_before_the_callers_turn():
    assert last_said(said("a", "b", "c")) == "b"
    assert last_said(said("a")) == ""


def test_a_request_to_leave_a_message_takes_one_without_asking_first():
    rules = policy({"can I leave a message?": Intent("message", 0.8), "a message, maybe?": Intent("message", 0.4)})
    assert rules.decide(said("can I leave a message?")) == Act("take_message", Intent("message", 0.8))
    assert not isinstance(rules.decide(said("a message, maybe?")), Act)  # unsure: answered, nothing started
