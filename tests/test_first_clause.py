"""The reply's first clause goes to TTS alone (agent/first_clause.py): where a sentence is cut, and what the
session's TTS stream is fed, text pushed at once or word by word as an LLM writes it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from agent.first_clause import FirstClauseTokenizer, first_clause, first_clause_tts

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("sentence", "head"), [
    ("We're open Monday to Friday, 9 am to 5 pm.", "We're open Monday to Friday,"),
    ("Dogs are welcome on the terrace; only assistance dogs come inside.", "Dogs are welcome on the terrace;"),
    ("Our hours are simple: nine to five.", "Our hours are simple:"),
    ("The cake takes three days - we bake it fresh.", "The cake takes three days -"),
    ("Sure, we have gluten free bread today.", None),  # "Sure," is too short to be worth a request
    ("A loaf costs 1,500 cents in the new money.", None),  # no space after the comma: a number
    ("We close at five.", None),
    ("Our sourdough and rye and spelt loaves come out of the oven together at seven, then the rolls.", None),
    ("I'm sorry, I don't know that.", None),
])
def test_a_sentence_is_cut_after_its_first_clause_of_three_to_twelve_words(sentence, head):
    cut, rest = first_clause(sentence)
    if head is None:
        assert (cut, rest) == (sentence, "")
    else:
        assert cut == head and (cut + rest) == sentence


def fed(pieces: list[str]) -> list[str]:
    """What the TTS gets, one request per item, for a reply written in `pieces`."""
    async def run():
        stream = FirstClauseTokenizer().stream()
        for piece in pieces:
            stream.push_text(piece)
        stream.end_input()
        return [data.token.strip() async for data in stream]
    return asyncio.run(run())


REPLY = "We're open Monday to Friday, 9 am to 5 pm. On Saturdays, we open at ten and close at two in the afternoon."


def test_only_the_replys_first_sentence_is_cut_the_rest_goes_sentence_by_sentence():
    assert fed([REPLY]) == ["We're open Monday to Friday,",
                            "9 am to 5 pm. On Saturdays, we open at ten and close at two in the afternoon."]


def test_an_llm_writing_word_by_word_gets_the_same_pieces_and_the_clause_before_the_rest_is_written():
    words = REPLY.split(" ")
    assert fed([word + " " for word in words]) == fed([REPLY])

    async def first_piece_while_writing():
        stream = FirstClauseTokenizer().stream()
        for word in words[:7]:  # up to "9": the clause is complete, its sentence is not
            stream.push_text(word + " ")
        first = await asyncio.wait_for(stream.__anext__(), 1)
        await stream.aclose()
        return first.token.strip()
    assert asyncio.run(first_piece_while_writing()) == "We're open Monday to Friday,"


def test_a_reply_without_a_clause_goes_whole_and_a_streaming_tts_is_left_alone():
    assert fed(["Sure, we have gluten free bread today. ", "It comes in at nine."]) == [
        "Sure, we have gluten free bread today.", "It comes in at nine."]

    speech = SimpleNamespace(capabilities=SimpleNamespace(streaming=True))  # a TTS that takes text as it comes
    assert first_clause_tts(speech) is speech


def test_the_sessions_tts_is_fed_by_the_first_clause_tokenizer():
    from livekit.agents import tts
    from livekit.plugins import openai

    wrapped = first_clause_tts(openai.TTS(api_key="unused", base_url="http://127.0.0.1:9/v1"))
    assert isinstance(wrapped, tts.StreamAdapter)
    assert isinstance(wrapped._sentence_tokenizer, FirstClauseTokenizer)
