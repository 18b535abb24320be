"""The STT prompt builder: a greeting that names the business's words, within Whisper's prompt budget."""

from __future__ import annotations

import pytest

from agent.vocabulary import MAX_PROMPT_WORDS, transcription_prompt

pytestmark = pytest.mark.unit

BAKERY_TERMS = ["sourdough", "babka", "challah", "croissants", "gluten-free", "custom cakes", "kouign-amann"]


def _products(prompt: str) -> list[str]:
    listed = prompt.split("We have ")[1].split(". How can I")[0]
    return listed.replace(" and ", ", ").split(", ")


def test_names_the_business_street_and_every_term_in_a_greeting():
    prompt = transcription_prompt(business_name="Lakeside Bakery", terms=BAKERY_TERMS, street="14 Birch Lane")
    assert prompt == ("Thanks for calling Lakeside Bakery on 14 Birch Lane. We have sourdough, babka, challah, "
                      "croissants, gluten-free, custom cakes and kouign-amann. How can I help you today?")


def test_without_street_or_terms_it_is_the_bare_greeting():
    assert (transcription_prompt(business_name="Lakeside Bakery", terms=[])
            == "Thanks for calling Lakeside Bakery. How can I help you today?")
    bare = transcription_prompt(business_name="  ", terms=["", " ; "])
    assert bare == "Thanks for calling. How can I help you today?"


def test_a_single_term_needs_no_list():
    prompt = transcription_prompt(business_name="Lakeside Bakery", terms=["babka"])
    assert "We have babka. How can I help" in prompt


def test_drops_duplicates_blanks_and_the_business_name_and_tidies_whitespace():
    prompt = transcription_prompt(business_name="Lakeside Bakery",
                                  terms=["Babka", " babka ", "", "lakeside bakery", "custom\n cakes;"])
    assert _products(prompt) == ["Babka", "custom cakes"]


def test_a_long_list_is_cut_at_the_word_budget_keeping_the_first_terms():
    terms = [f"term{index}" for index in range(200)]
    prompt = transcription_prompt(business_name="Lakeside Bakery", terms=terms, street="14 Birch Lane")
    assert MAX_PROMPT_WORDS - 1 <= len(prompt.split()) <= MAX_PROMPT_WORDS  # the budget used, never exceeded
    kept = _products(prompt)
    assert kept == terms[:len(kept)]  # a prefix: the most important first, none skipped
    assert prompt.endswith("How can I help you today?")


def test_a_term_too_long_for_what_is_left_ends_the_list():
    long_term = " ".join(["word"] * MAX_PROMPT_WORDS)
    prompt = transcription_prompt(business_name="Lakeside Bakery", terms=["babka", long_term, "challah"])
    assert _products(prompt) == ["babka"]
