"""The parts of a warm transfer that need no server: the briefing's words, the colleague's keys and hang-up, and the
caller's keypad, which must not answer for the colleague (the real thing: tests/test_call_warm_transfer.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from agent.keypad import Keypad
from agent.warm_transfer import COLLEAGUE_IDENTITY, WarmTransfer, briefing, hold_music_frames

pytestmark = pytest.mark.unit


def test_the_briefing_says_who_is_calling_and_why_in_their_own_words():
    said = briefing("Harbor Dental", "+15550142", ["Hi.", "Can I talk to someone about my bill, please?"])
    assert said.startswith("Hello, this is the assistant of Harbor Dental.")
    assert "a caller on the line, calling from plus 1, 5 5 5, 0 1 4 2, who said: Hi. Can I talk to someone about my " \
           "bill, please." in said  # the number read out in groups
    assert said.endswith("Press 1 or say yes to take the call; press 2 or say no if you can't.")


def test_a_long_request_is_cut_to_its_last_words_and_an_unknown_caller_is_a_caller():
    said = briefing("Harbor Dental", None, [" ".join(f"w{i}" for i in range(100))])
    assert "I have a caller on the line, who said: w70 " in said and "w69 " not in said and "w99." in said
    assert "I have a caller on the line. Press 1" in briefing("Harbor Dental", None, [])


def participant(identity: str):
    return SimpleNamespace(identity=identity)


async def transfer() -> WarmTransfer:
    return WarmTransfer(room=None, lk=None, session=None, caller=participant("sip_caller"), trunk_id="ST_x",
                        number="+15550199", briefing="...", answer=lambda words: None)


@pytest.mark.parametrize("key, reply", [("1", "yes"), ("2", "no")])
async def test_the_colleague_answers_with_a_key(key, reply):
    warm = await transfer()
    warm._on_key(SimpleNamespace(digit=key, participant=participant(COLLEAGUE_IDENTITY)))  # before the question
    assert not warm.reply.done()
    warm._asked = True  # the briefing has begun
    warm._on_key(SimpleNamespace(digit="5", participant=participant(COLLEAGUE_IDENTITY)))  # not an answer
    warm._on_key(SimpleNamespace(digit=key, participant=participant("sip_caller")))  # the caller's key: not theirs
    assert not warm.reply.done()
    warm._on_key(SimpleNamespace(digit=key, participant=participant(COLLEAGUE_IDENTITY)))
    assert warm.reply.result() == reply


async def test_a_colleague_who_hangs_up_has_answered_and_a_caller_who_does_ends_the_hold():
    warm = await transfer()
    warm._on_left(participant(COLLEAGUE_IDENTITY))
    assert warm.reply.result() == "gone" and not warm.caller_gone.done()
    warm._on_left(participant("sip_caller"))
    assert warm.caller_gone.done()


def keypad(audio_enabled: bool = True) -> tuple[Keypad, list[str]]:
    acted: list[str] = []
    session = SimpleNamespace(input=SimpleNamespace(audio_enabled=audio_enabled),
                              room_io=SimpleNamespace(linked_participant=participant("sip_caller")),
                              current_agent=None)
    return Keypad(session, {"0": "person"}, acted.append), acted


def test_the_callers_keypad_ignores_the_colleagues_keys_and_keys_pressed_on_hold():
    pad, acted = keypad()
    pad._pressed(SimpleNamespace(digit="0", participant=participant(COLLEAGUE_IDENTITY)))
    assert acted == []
    pad._pressed(SimpleNamespace(digit="0", participant=participant("sip_caller")))
    assert acted == ["person"]
    on_hold, acted = keypad(audio_enabled=False)
    on_hold._pressed(SimpleNamespace(digit="0", participant=participant("sip_caller")))
    assert acted == []


async def test_the_hold_music_loops_without_a_silence_the_caller_could_take_for_a_dropped_line():
    music = await hold_music_frames()
    seconds = [frame.samples_per_channel / frame.sample_rate for frame in music]
    assert sum(seconds) > 30.0  # the music itself is kept
    quiet_s = longest_quiet_s = 0.0
    for frame, length in zip(music + music[:50], seconds + seconds[:50], strict=True):  # across the loop's seam
        samples = np.frombuffer(frame.data, np.int16).astype(np.float64)
        level = 0.8 * np.sqrt(np.mean(samples**2))  # played at volume 0.8
        quiet_s = quiet_s + length if level < 330 else 0.0  # under the test caller's voice level
        longest_quiet_s = max(longest_quiet_s, quiet_s)
    assert longest_quiet_s < 1.0, longest_quiet_s  # untrimmed: 4.3 s at the seam
