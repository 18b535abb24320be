"""Warm transfer over real SIP: a caller asks for a person; the agent puts them on hold, dials the colleague (a second
softphone, through the outbound trunk), briefs them, and connects the two once the colleague says yes. The caller
must not hear the briefing, and then each must hear the other. A colleague who never answers sends the caller back
to the assistant, who offers to take a message.
    make test  (or: scripts/netns.sh .venv/bin/pytest -m call tests/test_call_warm_transfer.py)
"""

from __future__ import annotations

import re
import time

import pytest

from bench.reliability import call_on_record, wait_until_no_calls
from tests.test_call_outbound import (
    CALLEE_PORT,
    CALLEE_START_S,
    finished,
    outbound_stack,  # noqa: F401  (a fixture)
)
from tools.softphone import CallOptions, run_call_process

pytestmark = pytest.mark.call
BRIEFING_WORDS = re.compile(r"press|take the call|put them through", re.I)  # said to, or by, the colleague only


def caller(stack, number: str, lines: list[str], tmp_path) -> CallOptions:
    return CallOptions(server=f"127.0.0.1:{stack.settings.sip_port}", number="+15550100", caller_id=number,
                       say=lines, reply_silence=3.0, max_reply=90, timeout=90, transcribe=True, hangup_after=3,
                       record=str(tmp_path / "caller-heard.wav"))


def test_the_colleague_is_briefed_unheard_by_the_caller_then_they_talk(outbound_stack, tmp_path):  # noqa: F811
    wait_until_no_calls(outbound_stack.settings, 60)
    colleague = run_call_process(CallOptions(
        answer="answer", local_port=CALLEE_PORT, say=["Hello?", "Yes, put them through.", "Hi, this is Sam. How can "
                                                      "I help?"],
        reply_silence=2.0, timeout=120, transcribe=True, hangup_after=6, record=str(tmp_path / "colleague.wav")))
    time.sleep(CALLEE_START_S)
    phone = run_call_process(caller(outbound_stack, "+15550144", [
        "I would like to speak to someone about my bill, please.", "Thanks Sam, it is about my invoice."], tmp_path))
    heard_by_caller, heard_by_colleague = finished(phone), finished(colleague)
    assert heard_by_caller.ok, heard_by_caller.error
    assert heard_by_colleague.ok, heard_by_colleague.error

    briefing, connecting, caller_line = (turn.reply_text or "" for turn in heard_by_colleague.turns[:3])
    assert re.search(r"bill", briefing, re.I) and BRIEFING_WORDS.search(briefing), briefing  # who and why
    assert re.search(r"through|connect", connecting, re.I), connecting
    assert re.search(r"invoice", caller_line, re.I), caller_line  # the caller's voice reaches the colleague

    on_hold = heard_by_caller.turns[0].reply_text or ""  # the reply to the request: hold, then the colleague
    assert re.search(r"hold", on_hold, re.I), on_hold
    assert not BRIEFING_WORDS.search(on_hold), on_hold  # the briefing and the colleague's yes stayed private
    assert re.search(r"sam|help", on_hold, re.I), on_hold  # the colleague's voice reaches the caller

    record = call_on_record(outbound_stack.settings, "+15550144", None)
    assert record["end_reason"] == "transferred" and "warm" in (record["end_detail"] or ""), record


def test_a_colleague_who_does_not_answer_sends_the_caller_back_with_a_message_offer(outbound_stack,  # noqa: F811
                                                                                    tmp_path):
    wait_until_no_calls(outbound_stack.settings, 60)
    colleague = run_call_process(CallOptions(answer="ring", local_port=CALLEE_PORT, timeout=120, transcribe=False))
    time.sleep(CALLEE_START_S)
    phone = run_call_process(caller(outbound_stack, "+15550145", ["Can I talk to a person, please?"], tmp_path))
    heard = finished(phone)
    colleague.kill()
    colleague.communicate()
    assert heard.ok, heard.error
    back = heard.turns[0].reply_text or ""
    assert re.search(r"hold", back, re.I) and re.search(r"message", back, re.I), back
    assert heard.hangup_by != "agent", "the agent hung up on a caller whose colleague did not answer"
