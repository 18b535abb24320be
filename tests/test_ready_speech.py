"""Replies said word for word are synthesized once and then played from disk (agent/ready_speech.py): through
livekit-agents' own StreamAdapter and the first-clause tokenizer, as in a call, no request of a prepared reply
reaches the TTS, and the caller gets the same audio."""

from __future__ import annotations

import asyncio
from datetime import date

import numpy as np
import pytest
from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, tts, utils

from agent.business import BusinessProfile
from agent.first_clause import first_clause_tts
from agent.ready_speech import ReadySpeech, ReadyTTS, requests_for
from agent.turn_policy import DONT_KNOW, PARDON, dont_know, fixed_replies, offer_if_not_answered

pytestmark = pytest.mark.unit

RATE = 24000


class CountingTTS(tts.TTS):
    """A stand-in TTS: each request is kept, and answered with a tone as long as its text."""

    def __init__(self) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False), sample_rate=RATE, num_channels=1)
        self.requests: list[str] = []

    def synthesize(self, text: str, *,
                   conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> tts.ChunkedStream:
        self.requests.append(text)
        return Tone(tts=self, input_text=text, conn_options=conn_options)


class Tone(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        seconds = 0.05 * len(self.input_text)
        samples = (np.sin(np.arange(int(RATE * seconds)) / 8) * 8000).astype(np.int16)
        output_emitter.initialize(request_id=utils.shortuuid(), sample_rate=RATE, num_channels=1,
                                  mime_type="audio/pcm")
        output_emitter.push(samples.tobytes())
        output_emitter.flush()


async def spoken(speech: tts.TTS, reply: str) -> bytes:
    """The audio the session's TTS stream gives for `reply`, written at once (as the turn policy's replies are)."""
    stream = first_clause_tts(speech).stream()
    stream.push_text(reply)
    stream.end_input()
    audio = b"".join([bytes(event.frame.data) async for event in stream])
    await stream.aclose()
    return audio


PROFILE = BusinessProfile(business_name="Lakeside Bakery", business_hours="Tuesday to Saturday, 7 am to 6 pm",
                          opening_hours="Tu-Sa 07:00-18:00", transfer_number="+15550199")
ANSWERS = ["Custom cakes start at 45 dollars for a 6-inch cake, 65 dollars for an 8-inch and 85 dollars for a "
           "10-inch. Please order at least two days ahead.",
           "We're at 14 Birch Lane, across from Lakeside Park, next to the public library."]


def test_a_prepared_reply_is_played_from_disk_and_other_text_still_goes_to_the_tts(tmp_path):
    replies = fixed_replies(PROFILE, ANSWERS, today=date(2026, 12, 7))
    assert dont_know(PROFILE) in replies and PARDON in replies and any("Tuesday to Saturday" in r for r in replies)

    async def run():
        live = CountingTTS()
        made = await ReadySpeech(tmp_path, "voice-a").prepare(replies, live)
        assert made == len(live.requests) > len(replies)  # the answers go as a clause and sentences
        assert await ReadySpeech(tmp_path, "voice-a").prepare(replies, live) == 0  # once per machine and voice

        ready = ReadyTTS(CountingTTS(), ReadySpeech(tmp_path, "voice-a"))
        for reply in [*replies, f"{ANSWERS[0]} {offer_if_not_answered(PROFILE)}"]:
            heard = await spoken(ready, reply)
            assert heard == await spoken(CountingTTS(), reply)  # the same audio as synthesized live
        assert ready._speech.requests == []

        await spoken(ready, "Hello there, nice to hear from you.")  # an LLM's reply
        assert ready._speech.requests == ["Hello there, nice to hear from you."]

        other_voice = ReadyTTS(CountingTTS(), ReadySpeech(tmp_path, "voice-b"))
        await spoken(other_voice, DONT_KNOW)
        assert other_voice._speech.requests == [DONT_KNOW]  # another voice's audio is never played
    asyncio.run(run())


def test_the_requests_are_the_pieces_the_first_clause_tokenizer_sends():
    assert asyncio.run(requests_for(ANSWERS[1])) == [
        "We're at 14 Birch Lane,", "across from Lakeside Park, next to the public library."]


def test_what_is_synthesized_ahead_is_what_the_bakery_may_say_word_for_word():
    from pathlib import Path

    from agent.assistant import TRANSFERRING
    from agent.knowledge import read_entries
    from agent.worker import said_word_for_word
    from stack.settings import Settings

    bakery = Path(__file__).parent / "data" / "bakery.toml"
    said = said_word_for_word(Settings.of(BUSINESS_CONFIG=str(bakery)))
    answers = [entry.answer for entry in read_entries(bakery)]
    assert set(answers) <= set(said)
    assert {TRANSFERRING, "Thank you for calling Lakeside Bakery. Goodbye!", PARDON} <= set(said)
    assert "We're open Tuesday to Saturday from 7 AM to 6 PM and Sunday from 8 AM to 1 PM, and closed Monday." in said
