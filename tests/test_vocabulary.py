"""The STT prompt builder: names the business's words in a sentence, within Whisper's prompt budget."""

from __future__ import annotations

import pytest

from agent.vocabulary import MAX_PROMPT_WORDS, transcription_prompt

pytestmark = pytest.mark.unit

BAKERY_TERMS = ["sourdough", "babka", "challah", "croissants", "gluten-free", "custom cakes", "kouign-amann"]


def test_names_the_business_street_and_every_term_in_a_sentence():
    prompt = transcription_prompt(business_name="Lakeside Bakery", terms=BAKERY_TERMS, street="14 Birch Lane")
    assert prompt == ("A phone call to Lakeside Bakery on 14 Birch Lane. The caller asks about sourdough, babka, "
                      "challah, croissants, gluten-free, custom cakes or kouign-amann.")


def test_without_street_or_terms_it_is_one_short_sentence():
    assert transcription_prompt(business_name="Lakeside Bakery", terms=[]) == "A phone call to Lakeside Bakery."
    assert transcription_prompt(business_name="  ", terms=["", " ; "]) == "A phone call."


def test_a_single_term_needs_no_list():
    prompt = transcription_prompt(business_name="Lakeside Bakery", terms=["babka"])
    assert prompt.endswith("The caller asks about babka.")


def test_drops_duplicates_blanks_and_the_business_name_and_tidies_whitespace():
    prompt = transcription_prompt(business_name="Lakeside Bakery",
                                  terms=["Babka", " babka ", "", "lakeside bakery", "custom\n cakes;"])
    assert prompt.endswith("The caller asks about Babka or custom cakes.")


def test_a_long_list_is_cut_at_the_word_budget_keeping_the_first_terms():
    terms = [f"term{index}" for index in range(200)]
    prompt = transcription_prompt(business_name="Lakeside Bakery", terms=terms, street="14 Birch Lane")
    assert len(prompt.split()) <= MAX_PROMPT_WORDS
    assert "term0," in prompt and "term199" not in prompt
    kept = prompt.split("asks about ")[1].rstrip(".").replace(" or ", ", ").split(", ")
    assert kept == terms[:len(kept)]  # a prefix: the most important first, none skipped
    assert len(prompt.split()) >= MAX_PROMPT_WORDS - 1  # and the budget is used, not wasted


def test_a_term_too_long_for_what_is_left_ends_the_list():
    long_term = " ".join(["word"] * MAX_PROMPT_WORDS)
    prompt = transcription_prompt(business_name="Lakeside Bakery", terms=["babka", long_term, "challah"])
    assert prompt.endswith("The caller asks about babka.")
