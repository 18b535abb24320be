"""The keypad and message-taking over real SIP: the softphone presses keys (RFC 4733 through livekit-sip) and speaks;
the agent reads the opening hours out, puts the caller through, and takes a message with a keyed-in number that it
reads back, into the call store (`cli.py messages`).
    make test  (or: scripts/netns.sh .venv/bin/pytest -m call tests/test_call_keypad.py)
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from bench.reliability import call_on_record, wait_until_no_calls
from tests.test_call_agent import call, dial, stt, tts  # noqa: F401  (fixtures)

pytestmark = pytest.mark.call


def test_key_9_reads_the_opening_hours_out(agent_stack, stt, tmp_path):  # noqa: F811
    result = call(keyed(dial(agent_stack, tmp_path, "key9"), "keys: 9"), stt)
    assert result.ok, result.error
    reply = result.turns[0].reply_text or ""
    # KEYPAD's default "9=hours"; BUSINESS_HOURS on the test stack is "Monday to Friday, 9 am to 5 pm".
    assert re.search(r"monday", reply, re.I) and re.search(r"friday", reply, re.I), reply


def test_key_0_puts_the_caller_through(agent_stack, stt, tmp_path):  # noqa: F811
    result = call(keyed(dial(agent_stack, tmp_path, "key0", hangup_after=15), "keys: 0"), stt)
    assert result.answered_ms is not None, result.error
    assert result.refer_to is not None and "+15550199" in result.refer_to, "key 0 brought no REFER"


def keyed(options, *lines: str):
    """The call's caller lines: spoken by the local voice, or "keys: ..." pressed on the keypad."""
    options.say = list(lines)
    return options


def test_a_failed_transfer_ends_in_a_message_with_a_keyed_number_read_back(agent_stack, stt, tmp_path):  # noqa: F811
    wait_until_no_calls(agent_stack.settings, 60)
    started = datetime.now(UTC)
    lines = ["Can I speak to a person, please?", "Yes, please.", "My name is John Smith.", "keys: 5550199#",
             "Yes, that's right.", "Please call me back about the wedding cake."]
    # The colleague's line refuses the transfer; replies wait 2.5 s of silence (the REFER's answer comes between
    # "I'm transferring you" and "the transfer didn't go through").
    result = call(keyed(dial(agent_stack, tmp_path, "message", caller_id="+15550166", hangup_after=3,
                             refer_response=603, reply_silence=2.5), *lines), stt)
    assert result.ok, result.error
    replies = [turn.reply_text or "" for turn in result.turns]
    print("agent:", replies)
    assert result.refer_to is not None, "no transfer was tried"
    # The reply to "a person, please": the transfer, and once the REFER is refused, the offer of a message.
    assert re.search(r"didn't go through", replies[0], re.I) and re.search(r"message", replies[0], re.I), replies
    assert re.search(r"name", replies[1], re.I), replies  # "Sure, I'll take a message. May I have your name?"
    assert re.search(r"calling from", replies[2], re.I), replies
    assert "5550199" in re.sub(r"\D", "", replies[3]), replies  # the keyed number, read back
    assert re.search(r"pass on", replies[4], re.I), replies
    assert re.search(r"passed your message on", replies[5], re.I), replies

    record = call_on_record(agent_stack.settings, "+15550166", started, bound_s=60,
                            complete=lambda found: bool(found["messages"]))
    assert record and record["messages"], record
    message = record["messages"][0]
    assert message["callback_number"] == "5550199"
    assert message["reason"] == "transfer_failed"
    assert re.search(r"smith", message["caller_name"], re.I), message
    assert re.search(r"wedding|cake", message["text"], re.I), message

    listed = agent_stack.cli("messages", "--json", timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert any(found["id"] == message["id"] for found in json.loads(listed.stdout)), listed.stdout
