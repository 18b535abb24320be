"""Outbound calls over real SIP: `cli.py dial` dispatches the agent, which dials through the outbound trunk
(livekit-sip) to a softphone answering in this namespace: a person who talks, a voicemail greeting with a beep (the
message is left after it), a busy line, one that never answers, and a small batch with a retry.
    make test  (or: scripts/netns.sh .venv/bin/pytest -m call tests/test_call_outbound.py)
"""

from __future__ import annotations

import re
import subprocess
import time

import numpy as np
import pytest

from bench.reliability import call_on_record, wait_until_no_calls
from tests.support.audio import tone
from tests.test_call_agent import tts  # noqa: F401  (a fixture)
from tools.softphone import (
    PORT_RATE,
    CallOptions,
    result_from_process,
    run_call_process,
    synthesize,
    write_wav,
)

pytestmark = pytest.mark.call
CALLEE_PORT = 21950
CALLEE_START_S = 5  # the softphone loads its voice and listens before the call comes
PURPOSE = "Your cleaning appointment is tomorrow at ten in the morning"
OUTBOUND = {"SIP_OUTBOUND_ADDRESS": f"127.0.0.1:{CALLEE_PORT}", "SIP_OUTBOUND_TRANSPORT": "udp"}


@pytest.fixture(scope="module")
def outbound_stack(agent_stack):
    """The shared stack with an outbound trunk to the callee's port; removed again afterwards."""
    setup = agent_stack.cli("sip", "setup", env=OUTBOUND)
    assert setup.returncode == 0 and "outbound trunk" in setup.stdout, setup.stdout + setup.stderr
    yield agent_stack
    agent_stack.cli("sip", "setup")  # without SIP_OUTBOUND_ADDRESS: deletes it


def callee(answer: str, lines: list[str] = (), play: list[str] = (), hangup_after: float = 0.0,
           timeout: float = 90) -> subprocess.Popen:
    return run_call_process(CallOptions(answer=answer, local_port=CALLEE_PORT, say=list(lines), play=list(play),
                                        hangup_after=hangup_after, timeout=timeout, transcribe=False,
                                        reply_silence=2.0, record=None))


def dial(stack, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    wait_until_no_calls(stack.settings, 60)  # one line on the test stack: an earlier call must be gone
    time.sleep(CALLEE_START_S)
    result = stack.cli("dial", *args, "--wait", "150", env={**OUTBOUND, **(env or {})}, timeout=240)
    print(result.stdout, result.stderr)
    return result


def finished(proc: subprocess.Popen):
    out, err = proc.communicate(timeout=120)
    result = result_from_process(out, err, proc.returncode)
    print("\n".join(result.timeline()))
    return result


def test_a_person_who_answers_hears_the_purpose_and_can_say_goodbye(outbound_stack, tmp_path):
    phone = run_call_process(CallOptions(
        answer="answer", local_port=CALLEE_PORT, say=["Hello, this is Ana.", "Okay, thank you. Goodbye."],
        hangup_after=15, timeout=90, transcribe=True, reply_silence=2.0, record=str(tmp_path / "person.wav")))
    dialled = dial(outbound_stack, "+15550177", "--purpose", PURPOSE)
    result = finished(phone)
    assert dialled.returncode == 0, dialled.stdout + dialled.stderr
    assert "answered, talked" in dialled.stdout
    assert result.ok, result.error
    assert result.remote_uri and "15550100" in result.remote_uri  # the caller ID: the first of SIP_NUMBERS
    opening = result.turns[0].reply_text or ""
    assert re.search(r"harbou?r|harvard|dental", opening, re.I) and re.search(r"clean|appointment", opening, re.I), \
        opening
    assert result.hangup_by == "agent", "the agent did not end the call after the goodbye"
    record = call_on_record(outbound_stack.settings, "+15550177", None)
    assert record["kind"] == "outbound" and record["end_reason"] == "assistant_ended", record


def test_a_voicemail_greeting_is_waited_out_and_the_message_left_after_the_beep(outbound_stack, tts,  # noqa: F811
                                                                                tmp_path):
    greeting = synthesize("Hi, you've reached Ana Lima. I can't take your call right now. Please leave a message "
                          "after the tone.", tts)
    beep = tone(1000, 0.6, rate=PORT_RATE)
    wav = tmp_path / "voicemail.wav"
    write_wav(wav, np.concatenate([greeting, np.zeros(PORT_RATE // 4, np.int16), beep]))
    phone = run_call_process(CallOptions(
        answer="answer", local_port=CALLEE_PORT, play=[str(wav)], hangup_after=40, timeout=90, transcribe=True,
        reply_silence=3.0, record=str(tmp_path / "voicemail-heard.wav")))
    dialled = dial(outbound_stack, "+15550178", "--purpose", PURPOSE)
    result = finished(phone)
    assert dialled.returncode == 0, dialled.stdout + dialled.stderr
    assert "voicemail: the message was left" in dialled.stdout
    message = result.turns[0].reply_text or ""
    # Left after the beep (the reply is timed from the end of the greeting and beep), with the purpose in it.
    assert result.turns[0].voice_to_voice_ms is not None and result.turns[0].voice_to_voice_ms > 0
    assert re.search(r"clean|appointment", message, re.I), message
    assert result.hangup_by == "agent", "the agent did not hang up after leaving the message"
    record = call_on_record(outbound_stack.settings, "+15550178", None)
    assert record["end_reason"] == "voicemail_left", record


@pytest.mark.parametrize("answer, outcome, words", [("busy", "callee_busy", "busy"),
                                                    ("ring", "no_answer", "no answer")])
def test_a_busy_or_unanswered_call_ends_with_its_outcome(outbound_stack, answer, outcome, words):
    phone = callee(answer, timeout=60)
    dialled = dial(outbound_stack, "+15550179", "--purpose", PURPOSE, env={"SIP_OUTBOUND_RINGING_TIMEOUT": "8"})
    phone.kill()
    phone.communicate()
    assert dialled.returncode == 3, dialled.stdout + dialled.stderr
    assert f"+15550179: {words}" in dialled.stdout, dialled.stdout
    record = call_on_record(outbound_stack.settings, "+15550179", None)
    assert record["end_reason"] == outcome, record


def test_a_batch_tries_a_busy_number_again(outbound_stack, tmp_path):
    batch = tmp_path / "calls.csv"
    batch.write_text(f"number,purpose\n+15550180,{PURPOSE}\n")
    phone = callee("busy", timeout=60)  # rejects every call until it stops
    dialled = dial(outbound_stack, "--csv", str(batch), "--retries", "1", "--retry-delay", "0")
    phone.kill()
    phone.communicate()
    assert dialled.returncode == 3
    assert re.search(r"\+15550180: busy .*, 2 tries", dialled.stdout), dialled.stdout


def test_bad_dial_input_gets_one_line(agent_stack, tmp_path):
    bad_batch = tmp_path / "bad.csv"
    bad_batch.write_text("number,purpose\n+15550181,Hello\nabc,Hi\n")
    for args, says in ((["call-me"], "E.164"), (["+15550181", "--purpose", " "], "purpose is empty"),
                       ([], "give the number"), (["--csv", str(bad_batch)], "line 3")):
        result = agent_stack.cli("dial", *args)
        assert result.returncode not in (0, 3) and says in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
