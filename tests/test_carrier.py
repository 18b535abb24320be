"""A real phone line through a simulated carrier: the carrier's network is a namespace of its own (10.99.0.0/24, a
veth pair from ours), Kamailio there is the carrier's SIP proxy, and livekit-sip listens on our side of the pair
(SIP_LISTEN_IP=10.99.0.1, TLS on 5061), never on loopback. The trunk takes the carrier's calls only: digest auth,
which Kamailio answers with uac_auth() as Twilio or Telnyx would, and the carrier's address as allowed_addresses.

This livekit-sip is a second one on the shared stack's LiveKit server (so the shared agent answers its calls), with a
trunk and rule of its own for +15550200. Tests marked `call` need the agent and its models; the others need only the
servers. See tests/support/carrier.py for the addresses.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.reliability import wait_until_no_calls
from sip import provisioning
from stack import lifecycle, phone_line
from stack.credentials import save_env_values
from stack.settings import REPO_ROOT, Settings
from tests.support.audio import voiced_seconds
from tests.support.carrier import (
    CALLER_PHONE,
    CARRIER_PROXY,
    OUR_ADDRESS,
    STRANGER,
    CarrierNetwork,
    Kamailio,
    Trunk,
    in_test_namespace,
    make_test_certificates,
)
from tests.support.livekit import caller_rooms, livekit
from tests.support.stack import ARTIFACTS, RunningStack
from tools.softphone import (
    PORT_RATE,
    CallOptions,
    CallResult,
    place_call_in_subprocess,
    read_wav,
    transcribe_result,
    write_wav,
)

pytestmark = [
    pytest.mark.carrier,
    pytest.mark.skipif(not in_test_namespace(), reason="needs the test namespace: run through scripts/netns.sh"),
    pytest.mark.skipif(not shutil.which("kamailio") and not Path("/usr/sbin/kamailio").exists(),
                       reason="needs Kamailio: python cli.py install --test-tools"),
]
NUMBER = "+15550200"
# A second number on a trunk of its own whose rule asks for an agent nobody runs: its calls ring until the caller
# gives up, whether or not the agent is up, or until the trunk's maximum duration (RINGING_MAX_S) ends them.
RINGING_NUMBER, RINGING_MAX_S = "+15550201", 12
# A third, on a trunk whose calls may last MAX_CALL_S seconds.
SHORT_CALLS_NUMBER, MAX_CALL_S = "+15550202", 30
TRUNK_USER = "carrier-trunk"
SIP_PORT, TLS_PORT = 5060, 5061
WAIT = 90  # the first call also waits for the agent's models to warm up


@dataclass
class CarrierLine:
    """The phone line as the carrier sees it: livekit-sip on 10.99.0.1, our trunk, and the carrier's network."""
    network: CarrierNetwork
    settings: Settings
    folder: Path
    password: str
    certificates: dict[str, str]
    trunk_id: str = ""
    provisioned: tuple = ()  # (trunk id, rule id) pairs, deleted at the end

    def trunk(self, transport: str = "udp", password: str | None = None) -> Trunk:
        port = TLS_PORT if transport == "tls" else SIP_PORT
        return Trunk(OUR_ADDRESS, port, TRUNK_USER, self.password if password is None else password, transport)

    def carrier(self, name: str, listen: str = CARRIER_PROXY, **trunk) -> Kamailio:
        tls_files = {"ca": self.certificates["ca"], "certificate": self.certificates["carrier_certificate"],
                     "key": self.certificates["carrier_key"]}
        return Kamailio(self.network, self.folder / name, self.trunk(**trunk), listen=listen, tls_files=tls_files)

    def dial(self, name: str, caller: str, via: str = CARRIER_PROXY, **options) -> CallOptions:
        return CallOptions(**{
            "server": f"{via}:{SIP_PORT}", "number": NUMBER, "caller_id": caller, "bind_address": CALLER_PHONE,
            "record": str(self.folder / f"{name}.wav"), "transcribe": False, "timeout": WAIT, **options})

    def call(self, options: CallOptions, stt=None, *, line_free: bool = False) -> CallResult:
        """A call from the caller's phone in the carrier's network, once earlier calls are gone (one line);
        `line_free` when the caller has already waited for that."""
        if not line_free:
            wait_until_no_calls(self.settings, 60)
        result = place_call_in_subprocess(options, timeout=300, prefix=self.network.inside)
        if stt is not None and result.recording:
            transcribe_result(result, stt)
        print("\n".join(result.timeline()))
        return result

    def sip_log(self) -> str:
        path = self.settings.log_dir / "livekit-sip.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _keep_logs(settings: Settings, name: str) -> None:
    """The carrier livekit-sip's log next to the other test artifacts, for a failed CI run."""
    target = ARTIFACTS / "logs" / name
    try:
        target.mkdir(parents=True, exist_ok=True)
        for log in settings.log_dir.glob("*.log"):
            (target / log.name).write_bytes(log.read_bytes())
    except OSError:
        pass


def _rooms(settings, caller: str):
    return asyncio.run(caller_rooms(settings, caller))


def wait_for(condition, seconds: float, step: float = 0.3):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(step)
    return condition()


def _room_gone(line: CarrierLine, caller: str, seconds: float = 20) -> bool:
    return wait_for(lambda: not _rooms(line.settings, caller), seconds)


@pytest.fixture(scope="module")
def carrier_line(stack_servers, tmp_path_factory) -> CarrierLine:
    folder = tmp_path_factory.mktemp("carrier")
    network = CarrierNetwork().start()
    shared = stack_servers.settings
    env_file = folder / ".env"
    certificates = make_test_certificates(folder / "certificates")
    save_env_values(
        env_file, LIVEKIT_URL=shared.livekit_url, LIVEKIT_PORT=str(shared.livekit_port),
        LIVEKIT_API_KEY=shared.api_key, LIVEKIT_API_SECRET=shared.api_secret, REDIS_PORT=str(shared.redis_port),
        SIP_LISTEN_IP=OUR_ADDRESS, SIP_PORT=str(SIP_PORT), SIP_TLS_PORT=str(TLS_PORT),
        SIP_TLS_CERT=certificates["trunk_certificate"], SIP_TLS_KEY=certificates["trunk_key"],
        SIP_HEALTH_PORT="21304", SIP_RTP_PORTS="21500-21549", SIP_NUMBERS=NUMBER)
    stack = RunningStack(env_file=env_file, run_dir=folder / "run")
    line = CarrierLine(network, stack.settings, folder, secrets.token_urlsafe(18), certificates)
    trunks = [provisioning.SipConfig(
        numbers=[number], allowed_addresses=[f"{CARRIER_PROXY}/32"], auth_username=TRUNK_USER,
        auth_password=line.password, agent_name=agent, max_call_duration=longest, media_encryption="allow",
        trunk_name=f"carrier {number} (tests)", rule_name=f"carrier {number} dispatch (tests)")
        for number, agent, longest in ((NUMBER, "phone-assistant", 1800),
                                       (RINGING_NUMBER, "nobody-runs-this", RINGING_MAX_S),
                                       (SHORT_CALLS_NUMBER, "phone-assistant", MAX_CALL_S))]

    async def provision():
        async with livekit(shared) as lk:
            return [await provisioning.setup(lk, config, exposed_at=phone_line.sip_uri(line.settings))
                    for config in trunks]

    async def unprovision():
        from livekit import api

        async with livekit(shared) as lk:
            for trunk_id, rule_id in line.provisioned:
                await lk.sip.delete_dispatch_rule(api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=rule_id))
                await lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk_id))

    try:
        lifecycle.up(line.settings, ["livekit-sip"])
        line.provisioned = tuple((result.trunk_id, result.rule_id) for result in asyncio.run(provision()))
        line.trunk_id = line.provisioned[0][0]
        yield line
    finally:
        if line.provisioned:
            asyncio.run(unprovision())
        lifecycle.down(line.settings)
        _keep_logs(line.settings, "carrier-livekit-sip")
        network.stop()


@pytest.fixture
def carriers(carrier_line):
    """Starts Kamailio instances for a test and stops them after it: `carriers("name", **trunk)`."""
    started: list[Kamailio] = []

    def start(name: str, **options) -> Kamailio:
        started.append(carrier_line.carrier(name, **options).start())
        return started[-1]

    yield start
    for kamailio in started:
        kamailio.stop()


# --- without the agent: the line refuses what it must -----------------------------------------------------------
def test_status_shows_what_faces_the_carrier(carrier_line, stack_servers):
    status = stack_servers.cli("status", env={"PHONE_ENV_FILE": str(carrier_line.settings.env_file),
                                              "PHONE_RUN_DIR": str(carrier_line.settings.run_dir)})
    assert f"SIP          udp+tcp  {OUR_ADDRESS}:{SIP_PORT}" in status.stdout, status.stdout
    assert f"SIP over TLS tcp      {OUR_ADDRESS}:{TLS_PORT}" in status.stdout
    assert "RTP          udp      0.0.0.0:21500-21549" in status.stdout
    sip_status = stack_servers.cli("sip", "status", env={"PHONE_ENV_FILE": str(carrier_line.settings.env_file),
                                                         "PHONE_RUN_DIR": str(carrier_line.settings.run_dir)})
    assert f"carriers send calls to sip:{OUR_ADDRESS}:{TLS_PORT};transport=tls" in sip_status.stdout, sip_status.stdout
    assert f"{NUMBER} (digest auth, from {CARRIER_PROXY}/32)" in sip_status.stdout
    listening = subprocess.run(["ss", "-Hltun"], capture_output=True, text=True).stdout
    assert f"{OUR_ADDRESS}:{SIP_PORT}" in listening and f"127.0.0.1:{SIP_PORT} " not in listening


def test_an_open_trunk_on_the_carrier_address_is_refused(carrier_line, stack_servers):
    env = {"PHONE_ENV_FILE": str(carrier_line.settings.env_file), "PHONE_RUN_DIR": str(carrier_line.settings.run_dir)}
    refused = stack_servers.cli("sip", "setup", "--dry-run", env=env)
    assert refused.returncode == 1
    assert "refusing an open trunk" in refused.stderr and "SIP_AUTH_USERNAME" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) <= 4  # one message, wrapped at most by the console width


def test_wrong_password_is_rejected_and_makes_no_room(carrier_line, carriers):
    carriers("wrong-password", password="not-" + carrier_line.password)
    caller = "+15557710001"
    result = carrier_line.call(carrier_line.dial("wrong-password", caller, timeout=15))
    assert not result.ok
    assert result.answered_ms is None
    assert result.status_code in (401, 403, 407), (result.status_code, result.error)
    assert not _rooms(carrier_line.settings, caller)
    assert "Authentication failed" in carrier_line.sip_log()


def test_a_source_outside_allowed_addresses_is_rejected_even_with_the_password(carrier_line, carriers):
    """A stranger on the carrier's network who knows the trunk's password, sending through a proxy of their own."""
    stranger = carriers("stranger", listen=STRANGER)
    caller = "+15557710002"
    result = carrier_line.call(carrier_line.dial("stranger", caller, via=STRANGER, timeout=6))
    assert not result.ok and result.answered_ms is None, result.timeline()
    assert not _rooms(carrier_line.settings, caller)
    # livekit-sip hides itself from unknown sources (hide_inbound_port, on for a reachable address): it rings and
    # never answers, so a scanner learns nothing; the call is dropped at once on our side.
    assert "digest challenge" not in stranger.log()
    dropped = [line for line in carrier_line.sip_log().splitlines()
               if "Closing inbound call" in line and caller in line and f'"fromIP": "{STRANGER}"' in line]
    assert dropped and '"result": "client_error"' in dropped[0], carrier_line.sip_log()[-3000:]


def test_the_trunk_ends_a_call_at_its_maximum_duration(carrier_line, carriers):
    """livekit-sip enforces the trunk's max_call_duration itself, even on a call that only rings (no agent)."""
    carriers("carrier")
    caller = "+15557710004"
    assert wait_until_no_calls(carrier_line.settings, 60) is not None, "earlier calls' rooms stayed"
    started = time.monotonic()
    result = carrier_line.call(carrier_line.dial("cut", caller, number=RINGING_NUMBER, timeout=40), line_free=True)
    elapsed = time.monotonic() - started
    assert result.answered_ms is None and result.ringing_ms is not None, result.timeline()
    assert result.error and "rang for" not in result.error, result.error  # ended by the line, not by the caller
    assert elapsed < RINGING_MAX_S + 8, f"the call lasted {elapsed:.0f} s; the trunk allows {RINGING_MAX_S} s"
    assert _room_gone(carrier_line, caller, seconds=10)


def test_cancel_from_the_carrier_side_removes_the_ringing_call_room(carrier_line, carriers):
    carrier = carriers("carrier")
    caller = "+15557710003"
    # The caller gives up while it rings: the softphone CANCELs the INVITE, through the carrier.
    # It rings for 6 s, well inside the trunk's RINGING_MAX_S: time for livekit-sip to join the room on a busy machine.
    options = carrier_line.dial("cancel", caller, number=RINGING_NUMBER, timeout=6)
    outcome: list[CallResult] = []
    # The room is watched from the moment of dialling, so the wait for the earlier calls' rooms comes first (an
    # emptied room can stay for livekit-server's departure timeout, longer than the ringing lasts).
    assert wait_until_no_calls(carrier_line.settings, 60) is not None, "earlier calls' rooms stayed"
    dialing = threading.Thread(target=lambda: outcome.append(carrier_line.call(options, line_free=True)))
    dialing.start()
    ringing_room = wait_for(lambda: _rooms(carrier_line.settings, caller), 10)
    dialing.join(60)
    result = outcome[0]
    assert ringing_room, "the call never reached a room while it rang"
    assert result.answered_ms is None and result.ringing_ms is not None, result.timeline()
    assert "CANCEL for" in carrier.log(), carrier.log()[-2000:]
    closed = [line for line in carrier_line.sip_log().splitlines() if "Closing inbound call" in line and caller in line]
    assert closed and '"status": 487' in closed[0], closed  # 487 Request Terminated: livekit-sip took the CANCEL
    assert _room_gone(carrier_line, caller, seconds=10), "the caller cancelled but the room stayed"


# --- with the agent: calls answered through the carrier ------------------------------------------------------------
@pytest.fixture(scope="module")
def stt():
    from local_openai.stt import SpeechToText

    return SpeechToText()


@pytest.fixture(scope="module")
def question(tmp_path_factory) -> str:
    from local_openai.tts import TextToSpeech
    from tools.softphone import synthesize

    path = tmp_path_factory.mktemp("carrier-lines") / "hours.wav"
    write_wav(path, synthesize("What are your opening hours?", TextToSpeech()))
    return str(path)


@pytest.mark.call
def test_a_call_through_the_carrier_is_answered_and_heard_both_ways(agent_stack, carrier_line, carriers, stt,
                                                                      question):
    carrier = carriers("carrier")
    caller = "+15557710010"
    result = carrier_line.call(carrier_line.dial("call", caller, play=[question]), stt)
    assert result.ok, result.error
    assert "answering the trunk's 407 challenge" in carrier.log(), "the carrier never authenticated"
    # The agent's voice reached the caller: the greeting, with the business's name.
    assert voiced_seconds(read_wav(result.recording)) > 1.0
    assert re.search(r"calling|help|harbou?r|dental", result.greeting_text or "", re.I), result.greeting_text
    # The caller's voice reached the agent: it answered the question from the configured hours (outside them, the
    # answer may be only that the business is closed now).
    turn = result.turns[0]
    assert turn.voice_to_voice_ms is not None, "the agent did not answer the question"
    assert re.search(r"monday|friday|\b9\b|nine|\b5\b|five|closed|open", turn.reply_text or "", re.I), turn.reply_text
    assert result.rtp_packets_sent and result.rtp_packets_received


@pytest.mark.call
def test_bye_from_the_carrier_side_ends_the_call_and_removes_the_room(agent_stack, carrier_line, carriers):
    carriers("carrier")
    caller = "+15557710011"
    options = carrier_line.dial("bye", caller, hangup_after=2.0)
    proc_result: list[CallResult] = []
    caller_thread = threading.Thread(target=lambda: proc_result.append(carrier_line.call(options)))
    caller_thread.start()
    seen = wait_for(lambda: _rooms(carrier_line.settings, caller), WAIT)
    caller_thread.join(WAIT + 60)
    result = proc_result[0]
    assert result.ok and result.hangup_by == "caller", (result.error, result.hangup_by)
    assert seen and seen[0].caller.attributes.get("sip.trunkID") == carrier_line.trunk_id
    assert _room_gone(carrier_line, caller), "the caller hung up (BYE through the carrier) but the room stayed"


@pytest.mark.call
def test_a_call_over_tls_with_a_test_certificate_is_answered(agent_stack, carrier_line, carriers, stt):
    carrier = carriers("carrier-tls", transport="tls")
    caller = "+15557710013"
    result = carrier_line.call(carrier_line.dial("tls", caller), stt)
    assert result.ok, f"{result.error}\n{carrier.log()[-2000:]}"
    assert voiced_seconds(read_wav(result.recording)) > 1.0
    assert re.search(r"calling|help|harbou?r|dental", result.greeting_text or "", re.I), result.greeting_text
    assert '"transport": "tls"' in carrier_line.sip_log().lower() or "tls" in carrier_line.sip_log().lower()


@pytest.mark.call
def test_srtp_is_used_when_the_carrier_requires_it(agent_stack, carrier_line, carriers, stt):
    """The trunk allows SRTP (SIP_MEDIA_ENCRYPTION=allow); a caller that will only talk SRTP (SDES) is answered, so
    the answer carried keys, and it hears the greeting through the encrypted stream."""
    carriers("carrier")
    caller = "+15557710016"
    result = carrier_line.call(carrier_line.dial("srtp", caller, srtp="mandatory"), stt)
    assert result.ok, result.error
    assert voiced_seconds(read_wav(result.recording)) > 1.0
    assert re.search(r"calling|help|harbou?r|dental", result.greeting_text or "", re.I), result.greeting_text


@pytest.mark.call
def test_an_invite_flood_leaves_the_line_answering(agent_stack, carrier_line, carriers):
    """200 INVITEs in 10 s from one source (a scanner on the carrier's network), then a legitimate call."""
    carriers("carrier")
    flood = subprocess.run(
        [*carrier_line.network.inside, sys.executable, "-m", "tests.support.flood", "--source", STRANGER,
         "--target", f"{OUR_ADDRESS}:{SIP_PORT}", "--number", NUMBER, "--count", "200", "--seconds", "10"],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    report = json.loads(flood.stdout.strip().splitlines()[-1])
    print("flood:", report)
    assert report["sent"] == 200
    assert not report["replies"].get("200"), "a flooded INVITE was answered"
    caller = "+15557710014"
    result = carrier_line.call(carrier_line.dial("after-flood", caller, hangup_after=0.5))
    assert result.ok, result.error
    assert result.greeting_ms is not None
    assert _room_gone(carrier_line, caller)


@pytest.mark.call
def test_a_call_reaching_the_maximum_duration_is_ended_politely(agent_stack, carrier_line, carriers, stt):
    """The trunk allows MAX_CALL_S seconds; the agent, told by the SIP participant's attributes, says goodbye and
    hangs up (20 s before the limit, counted from the call's start) before livekit-sip would cut the line."""
    carriers("carrier")
    caller = "+15557710015"
    # The caller would stay on the line for a minute after the greeting.
    result = carrier_line.call(carrier_line.dial("too-long", caller, number=SHORT_CALLS_NUMBER, hangup_after=60))
    assert result.answered_ms is not None, result.error
    assert result.hangup_by == "agent", "the call was not ended for the caller"
    assert result.hangup_ms <= (MAX_CALL_S + 3) * 1000, result.timeline()
    heard = stt.transcribe(read_wav(result.recording).astype("float32") / 32768.0, PORT_RATE, timestamps=True)
    assert re.search(r"time limit", heard, re.I), heard
    assert _room_gone(carrier_line, caller)
