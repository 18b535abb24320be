"""The call limits the agent keeps (agent/call_limits.py), on a stand-in session: what is said, and when the call
ends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from agent import call_limits
from agent.call_limits import CallLimits, caller_key, max_duration_of, too_many_from_caller
from sip import provisioning

pytestmark = pytest.mark.unit


class Session:
    """What CallLimits uses of an AgentSession: events, say() and shutdown()."""

    def __init__(self):
        self.handlers: dict[str, list] = {}
        self.said: list[str] = []
        self.closed = False
        self.input = SimpleNamespace(audio_enabled=True)  # False: on hold, or handed over to a colleague

    def on(self, event, handler):
        self.handlers.setdefault(event, []).append(handler)

    def emit(self, event, **fields):
        for handler in self.handlers.get(event, []):
            handler(SimpleNamespace(**fields))

    def say(self, text, allow_interruptions=True):
        self.said.append(text)

        async def played():
            await asyncio.sleep(0)

        return SimpleNamespace(wait_for_playout=played)

    def shutdown(self):
        self.closed = True
        self.emit("close")


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_silent_caller_is_asked_then_let_go():
    session = Session()
    CallLimits(session, silence=20, max_duration=None).start()
    session.emit("user_state_changed", new_state="away")
    await settle()
    assert session.said == [call_limits.STILL_THERE] and not session.closed
    session.emit("user_state_changed", new_state="listening")  # the question was spoken; still nothing from them
    session.emit("user_state_changed", new_state="away")
    await settle()
    assert session.said[-1] == call_limits.SILENT_GOODBYE and session.closed


async def test_a_caller_who_answers_starts_the_count_afresh():
    session = Session()
    CallLimits(session, silence=20, max_duration=None).start()
    session.emit("user_state_changed", new_state="away")
    session.emit("user_state_changed", new_state="speaking")  # "yes, I'm here"
    session.emit("user_state_changed", new_state="away")
    await settle()
    assert session.said == [call_limits.STILL_THERE, call_limits.STILL_THERE] and not session.closed


async def test_a_caller_on_hold_or_with_a_colleague_is_never_asked_or_cut_off():
    session = Session()
    session.input.audio_enabled = False  # a warm transfer: on hold, then talking to the colleague
    CallLimits(session, silence=20, max_duration=20.5, wrap_up=20).start()
    for _ in range(3):
        session.emit("user_state_changed", new_state="away")
    await asyncio.sleep(0.6)  # the time limit's goodbye would be due now
    await settle()
    assert session.said == [] and not session.closed


async def test_the_time_limit_ends_the_call_with_a_goodbye_before_the_line_is_cut():
    session = Session()
    limits = CallLimits(session, silence=None, max_duration=0.3, wrap_up=0.2)
    limits.start()
    await asyncio.sleep(0.05)
    assert not session.said
    await asyncio.sleep(0.3)
    assert session.said == [call_limits.TIME_LIMIT_GOODBYE] and session.closed


async def test_the_time_limit_counts_from_the_start_of_the_call_not_of_the_session():
    session = Session()
    CallLimits(session, silence=None, max_duration=30, wrap_up=20, started_ago=9.9).start()
    await asyncio.sleep(0.2)
    assert session.said == [call_limits.TIME_LIMIT_GOODBYE] and session.closed
    assert call_limits.seconds_since(None) == 0.0
    assert 59 < call_limits.seconds_since(datetime.now(UTC) - timedelta(seconds=60)) < 61
    assert call_limits.seconds_since(datetime(1970, 1, 21, tzinfo=UTC)) == 0.0  # a clock read in the wrong unit


async def test_a_call_that_ends_first_cancels_the_time_limit():
    session = Session()
    CallLimits(session, silence=None, max_duration=0.2, wrap_up=0.1).start()
    session.shutdown()  # the caller hung up
    await asyncio.sleep(0.3)
    assert session.said == []


def test_the_maximum_duration_travels_as_the_rule_sets_it():
    rule = provisioning.SipConfig(numbers=["+15550100"], max_call_duration=900).rule("ST_x")
    assert rule.attributes[call_limits.MAX_DURATION_ATTRIBUTE] == "900"
    assert provisioning.MAX_DURATION_ATTRIBUTE == call_limits.MAX_DURATION_ATTRIBUTE
    assert max_duration_of(dict(rule.attributes)) == 900
    assert max_duration_of({}) is None and max_duration_of({call_limits.MAX_DURATION_ATTRIBUTE: "x"}) is None
    assert not provisioning.SipConfig(numbers=["+15550100"], max_call_duration=0).rule("ST_x").attributes


def test_calls_at_once_from_one_number():
    rooms = ["call-_+15550123_abc", "call-_+15550123_def", "call-_+15550999_ghi", "web-1234"]
    assert caller_key("call-_+15550123_xyz", "call-") == "call-_+15550123"
    assert caller_key("web-1234", "call-") is None
    assert too_many_from_caller("call-_+15550123_new", rooms, "call-", limit=2)
    assert not too_many_from_caller("call-_+15550123_new", rooms, "call-", limit=3)
    assert not too_many_from_caller("call-_+15550999_new", rooms, "call-", limit=2)
    assert not too_many_from_caller("call-_+15550123_new", rooms, "call-", limit=0)  # 0: no limit
    assert not too_many_from_caller("web-5678", rooms, "call-", limit=1)
