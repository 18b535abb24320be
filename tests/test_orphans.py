"""Which rooms a starting worker ends (answered phone calls that no agent serves any more) and which it answers (calls
still ringing with no agent): agent/orphans.py."""

from __future__ import annotations

import pytest
from livekit import api

from agent.orphans import orphaned, unanswered

pytestmark = pytest.mark.unit
SIP, AGENT, WEB = api.ParticipantInfo.Kind.SIP, api.ParticipantInfo.Kind.AGENT, api.ParticipantInfo.Kind.STANDARD


def person(kind, status: str = "") -> api.ParticipantInfo:
    return api.ParticipantInfo(kind=kind, attributes={"sip.callStatus": status} if status else {})


def test_an_answered_caller_alone_is_an_orphan():
    assert orphaned([person(SIP, "active")])


@pytest.mark.parametrize("people", [
    [person(SIP, "active"), person(AGENT)],  # served
    [person(SIP, "ringing")],  # waiting for its agent's dispatch
    [person(SIP)],  # no status yet
    [person(WEB)],  # a web conversation is not ours to end
    [],
])
def test_calls_being_served_or_still_ringing_are_left_alone(people):
    assert not orphaned(people)


@pytest.mark.parametrize("people", [[person(SIP, "ringing")], [person(SIP)]])
def test_a_ringing_caller_without_an_agent_is_unanswered(people):
    assert unanswered(people)


@pytest.mark.parametrize("people", [
    [person(SIP, "ringing"), person(AGENT)],  # its agent is joining
    [person(SIP, "active")],  # an orphan: ended, not answered again
    [person(WEB)],
    [],
])
def test_served_orphaned_and_web_calls_are_not_unanswered(people):
    assert not unanswered(people)
