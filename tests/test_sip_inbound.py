"""A real SIP user agent (SIPp) dials the provisioned number: livekit-sip must put the caller in a room of their
own and the dispatch rule must ask for our agent. (The conversation itself is in the call tests.)"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.livekit import caller_rooms

pytestmark = [pytest.mark.stack,
              pytest.mark.skipif(not shutil.which("sipp"), reason="needs sipp: apt-get install sip-tester")]
SCENARIO = Path(__file__).parent / "data" / "invite_and_ring.xml"


def dial(stack, number: str, caller: str, log_dir: Path, local_port: int) -> subprocess.Popen:
    """One call from SIPp on 127.0.0.1:`local_port` with caller ID `caller`; it rings for 8 s. (A port of its own:
    on a shared one, like 5060, it would hear other calls' retransmissions.)"""
    return subprocess.Popen(
        ["sipp", "-sf", str(SCENARIO), "-s", number, "-key", "caller", caller, "-m", "1",
         "-i", "127.0.0.1", "-p", str(local_port), "-mp", "23950", "-trace_msg", "-trace_err",
         "-message_file", str(log_dir / "messages.log"), "-error_file", str(log_dir / "errors.log"),
         "-timeout", "30s", "-nostdin", f"127.0.0.1:{stack.settings.sip_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=log_dir,
    )


def wait_for_caller_room(settings, caller: str, seconds: float = 10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if rooms := asyncio.run(caller_rooms(settings, caller)):
            return rooms
        time.sleep(0.3)
    return []


def test_call_creates_caller_room_and_dispatches_agent(stack_servers, provisioned_sip, tmp_path):
    caller = "+15557770001"
    sipp = dial(stack_servers, "+15550100", caller, tmp_path, local_port=21961)
    try:
        rooms = wait_for_caller_room(stack_servers.settings, caller)
    finally:
        sipp.kill()
    assert rooms, "no room with the SIP caller appeared; SIPp log:\n" + _read(tmp_path / "messages.log")
    room, participant, agents = rooms[0].room, rooms[0].caller, rooms[0].dispatched
    assert room.name.startswith("call-")
    assert participant.identity.startswith("sip_")
    assert participant.attributes["sip.trunkPhoneNumber"] == "+15550100"
    assert participant.attributes["sip.trunkID"] == provisioned_sip.trunk_id
    assert agents == ["phone-assistant"]


def test_unknown_number_gets_no_room(stack_servers, provisioned_sip, tmp_path):
    """livekit-sip drops calls no trunk/rule matches without answering them (it logs them as "flood")."""
    caller = "+15557770002"
    sipp = dial(stack_servers, "+19999999999", caller, tmp_path, local_port=21962)
    try:
        assert not wait_for_caller_room(stack_servers.settings, caller, seconds=4)
    finally:
        sipp.kill()
    messages = _read(tmp_path / "messages.log")
    assert "INVITE sip:+19999999999" in messages
    assert "SIP/2.0 200" not in messages
    sip_log = _read(stack_servers.settings.log_dir / "livekit-sip.log")
    assert any('"reason": "flood"' in line for line in sip_log.splitlines() if "SIP call ended" in line)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else "(none)"
