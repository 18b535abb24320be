"""Outbound calls without a call (agent/outbound.py, sip/dialing.py): the job's metadata, what is said, how a failed
dial's SIP status becomes an outcome, and a batch file's mistakes. Real calls: tests/test_call_outbound.py."""

from __future__ import annotations

import pytest
from livekit import api

from agent.business import BusinessProfile
from agent.outbound import OutboundCall, dial_outcome, opening_line, voicemail_message
from calls.models import EndReason
from sip.dialing import Outcome, read_batch, room_for
from stack.errors import StackError

pytestmark = pytest.mark.unit


def test_the_call_rides_in_the_dispatch_metadata_and_inbound_jobs_carry_none():
    call = OutboundCall(number="+15550123", purpose="Your order is ready", trunk_id="ST_x", ringing_timeout=20)
    assert OutboundCall.from_metadata(call.metadata()) == call
    for inbound in ("", None, "not json", '{"other": 1}', '["outbound"]'):
        assert OutboundCall.from_metadata(inbound) is None


def test_what_a_person_and_a_voicemail_hear():
    profile = BusinessProfile(business_name="Lakeside Bakery")
    assert opening_line(profile, "your cake order is ready for pickup") == \
        "Hello, this is the assistant of Lakeside Bakery. Your cake order is ready for pickup."
    assert voicemail_message(profile, "Your order is ready!", "+15550100") == \
        ("Hello, this is Lakeside Bakery. Your order is ready! Please call us back on plus 1, 5 5 5, 0 1 0 0. "
         "Thank you, goodbye.")


def sip_error(code: int, status: str) -> api.SipCallError:
    return api.SipCallError("unavailable", "twirp error", status=500,
                            metadata={"sip_status_code": str(code), "sip_status": status})


@pytest.mark.parametrize("code, reason", [(486, EndReason.callee_busy), (600, EndReason.callee_busy),
                                          (603, EndReason.declined), (480, EndReason.no_answer),
                                          (408, EndReason.no_answer), (404, EndReason.dial_failed)])
def test_a_failed_dials_sip_status_is_its_outcome(code, reason):
    assert dial_outcome(sip_error(code, "Whatever")) == (reason, f"{code} Whatever")
    assert dial_outcome(RuntimeError("the trunk is gone")) == (EndReason.dial_failed, "the trunk is gone")
    # livekit-sip v1.8.0 ends a call that rang out with a bare 408, no SIP status
    assert dial_outcome(api.TwirpError("canceled", "sip request timed out", status=408))[0] == EndReason.no_answer


def test_outcomes_say_whether_the_call_reached_someone():
    assert Outcome("+1", "r", end_reason="voicemail_left").reached
    assert Outcome("+1", "r", end_reason="caller_hung_up").reached
    assert "answered, talked" in Outcome("+1", "r", end_reason="caller_hung_up").describe()
    for reason in ("no_answer", "callee_busy", "declined", "dial_failed", "no_free_line", "error"):
        assert not Outcome("+1", "r", end_reason=reason).reached
    assert not Outcome("+1", "r").reached


def test_rooms_are_named_after_the_number_and_unique():
    assert room_for("+1 555-0123").startswith("outbound-15550123-")
    assert room_for("+15550123") != room_for("+15550123")


def test_a_batch_file_is_checked_line_by_line(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("number,purpose\n+15550123,Your order is ready\n+15550124, Your table is booked \n")
    assert read_batch(good) == [("+15550123", "Your order is ready"), ("+15550124", "Your table is booked")]
    for text, says in (("number,purpose\n+15550123,\n", "line 2: the purpose is empty"),
                       ("number,purpose\n+15550123,ok\nabc,ok\n", "line 3"),
                       ("phone,why\n+15550123,ok\n", "number,purpose"),
                       ("number,purpose\n", "no calls")):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(StackError, match=says):
            read_batch(bad)
    with pytest.raises(StackError, match="cannot read"):
        read_batch(tmp_path / "missing.csv")
