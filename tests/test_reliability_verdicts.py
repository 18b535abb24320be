"""How the reliability suite's burst scenario judges each caller (bench.reliability.burst_verdict), from softphone
results as pjsua2 reports them and the call store's end reason: the promise is served (question answered), told busy
in words and let go, or 486, each within BUSY_BOUND_S; never ringing on, never a greeting followed by silence."""

from __future__ import annotations

import pytest

from bench.reliability import BUSY_BOUND_S, BurstCaller, burst_verdict
from tools.softphone import CallResult
from tools.softphone.results import Turn

pytestmark = pytest.mark.unit
LATE_MS = BUSY_BOUND_S * 1000 + 1


def answered(**fields) -> CallResult:
    return CallResult(**{"ok": True, "status_code": 200, "ringing_ms": 40.0, "answered_ms": 900.0,
                         "greeting_ms": 1500.0, "hangup_by": "caller", **fields})


def asked(reply_ms: float | None) -> list[Turn]:
    return [Turn(source="question.wav", speech_ms=1600.0, speech_end_ms=6000.0, voice_to_voice_ms=reply_ms)]


def test_a_caller_whose_question_is_answered_is_served():
    assert burst_verdict(answered(turns=asked(4200.0)), "caller_hung_up") == ("served", None)


def test_a_caller_greeted_and_then_left_in_silence_is_a_problem():
    kind, problem = burst_verdict(answered(turns=asked(None)), "caller_hung_up")
    assert kind == "served" and "silence" in problem


def test_a_caller_answered_but_never_greeted_is_a_problem():
    kind, problem = burst_verdict(answered(greeting_ms=None, error="no audio from the agent within 45 s"), None)
    assert kind == "served" and "silence" in problem


def test_a_caller_told_busy_and_let_go_in_time_is_busy():
    result = answered(greeting_ms=2500.0, hangup_by="agent")
    assert burst_verdict(result, "busy") == ("busy", None)
    assert BurstCaller(1, result, "busy").at_s == 2.5  # when the busy message began


def test_a_busy_message_late_or_without_a_bye_is_a_problem():
    assert "busy message began" in burst_verdict(answered(greeting_ms=LATE_MS, hangup_by="agent"), "busy")[1]
    assert "not let go" in burst_verdict(answered(hangup_by="caller"), "busy")[1]


def test_a_486_in_time_is_fine_and_a_late_one_is_not():
    assert burst_verdict(CallResult(status_code=486, ringing_ms=40.0, rejected_ms=1200.0), None) == ("486", None)
    kind, problem = burst_verdict(CallResult(status_code=486, rejected_ms=LATE_MS), None)
    assert kind == "486" and "486 came after" in problem


def test_a_caller_left_ringing_or_refused_otherwise_fails():
    kind, problem = burst_verdict(CallResult(ringing_ms=40.0, error="rang for 45 s but nobody answered"), None)
    assert (kind, problem) == ("rang", "rang for 45 s but nobody answered")
    refused = CallResult(status_code=480, reason="Temporarily Unavailable", ringing_ms=40.0, rejected_ms=900.0)
    assert burst_verdict(refused, None) == ("failed", "480 Temporarily Unavailable")
    assert burst_verdict(CallResult(error="the softphone process ended without a result"), None)[0] == "failed"


def test_an_answer_after_long_ringing_is_a_problem():
    kind, problem = burst_verdict(answered(answered_ms=LATE_MS + 40.0, turns=asked(3000.0)), "caller_hung_up")
    assert kind == "served" and problem.startswith("rang")


def test_a_caller_who_got_the_apology_was_not_served():
    kind, problem = burst_verdict(answered(turns=asked(2000.0), hangup_by="agent"), "error")
    assert kind == "served" and "apology" in problem
