"""The softphone against a second pjsua2 user agent written here (no LiveKit): SIP dialog, paced RTP both ways,
DTMF, remote BYE, REFER, busy, no answer. (What needs no call is in test_softphone_unit.py.)

Run inside a network namespace with only loopback:
    unshare -n sh -c 'ip link set lo up; .venv/bin/pytest tests/test_softphone.py'
"""

from __future__ import annotations

import subprocess
import time
import wave
from dataclasses import dataclass, field

import numpy as np
import pytest

from tests.support.audio import dominant_frequency, tone, voiced_seconds
from tests.support.cli import cli_call
from tools.softphone import (
    DEFAULT_VOICE_THRESHOLD,
    PORT_RATE,
    CallAudio,
    CallOptions,
    CallResult,
    make_media_port,
    read_wav,
    result_from_process,
    run_call_process,
    write_wav,
)

pj = pytest.importorskip("pjsua2")
pytestmark = pytest.mark.sip  # real-time calls between two local user agents


@dataclass
class Behaviour:
    """What the answering side does with the next call."""
    response: int = 200               # 486: busy; 180: ring forever
    greeting: np.ndarray | None = None
    reply: np.ndarray | None = None   # played when the caller stops talking
    bye_after_greeting: float | None = None
    refer_to: str | None = None


@dataclass
class Seen:
    states: list[str] = field(default_factory=list)
    confirmed: bool = False
    disconnected_at: float | None = None
    rx_packets: int = 0
    tx_packets: int = 0
    connected_at: float | None = None
    dtmf: str = ""


class Answerer:
    """A second pjsua2 user agent in the test process, answering on 127.0.0.1:<port>."""

    def __init__(self):
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = False
        config.logConfig.level = 0
        config.logConfig.consoleLevel = 0
        config.medConfig.clockRate = PORT_RATE
        config.medConfig.sndClockRate = PORT_RATE
        config.medConfig.noVad = True
        self.ep.libInit(config)
        transport = pj.TransportConfig()
        transport.port = 0
        transport.boundAddress = "127.0.0.1"
        transport.publicAddress = "127.0.0.1"
        self.transport_id = self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.port = self.ep.transportGetInfo(self.transport_id).localName.split(":")[-1]
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        account_config = pj.AccountConfig()
        account_config.idUri = "sip:agent@127.0.0.1"
        account_config.natConfig.iceEnabled = False
        account_config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        account_config.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
        answerer = self

        class Account(pj.Account):
            def onIncomingCall(self, prm):  # noqa: N802
                answerer._incoming(prm.callId)

        self.account = Account()
        self.account.create(account_config)
        self.behaviour = Behaviour()
        self.call = None
        self.audio: CallAudio | None = None
        self.media_port = None
        self.seen = Seen()

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _incoming(self, call_id: int) -> None:
        answerer = self

        class Call(pj.Call):
            def onCallState(self, prm):  # noqa: N802
                info = self.getInfo()
                answerer.seen.states.append(info.stateText)
                if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
                    answerer.seen.confirmed = True
                    answerer.seen.connected_at = time.monotonic()
                if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                    answerer.seen.disconnected_at = time.monotonic()

            def onDtmfDigit(self, prm):  # noqa: N802
                answerer.seen.dtmf += prm.digit

            def onStreamDestroyed(self, prm):  # noqa: N802
                try:
                    stat = self.getStreamStat(0)
                    answerer.seen.rx_packets = stat.rtcp.rxStat.pkt
                    answerer.seen.tx_packets = stat.rtcp.txStat.pkt
                except pj.Error:
                    pass

            def onCallMediaState(self, prm):  # noqa: N802
                info = self.getInfo()  # kept alive: its media vector dies with it
                for media in info.media:
                    if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                        call_audio = self.getAudioMedia(media.index)
                        call_audio.startTransmit(answerer.media_port)
                        answerer.media_port.startTransmit(call_audio)

        self.audio = CallAudio(DEFAULT_VOICE_THRESHOLD)
        self.media_port = make_media_port(pj, self.audio)
        self.call = Call(self.account, call_id)
        prm = pj.CallOpParam()
        prm.statusCode = self.behaviour.response if self.behaviour.response != 200 else 180
        self.call.answer(prm)
        if self.behaviour.response == 200:
            prm = pj.CallOpParam()
            prm.statusCode = 200
            self.call.answer(prm)

    def serve(self, proc: subprocess.Popen, limit: float = 60) -> CallResult:
        """Pumps SIP events and plays the behaviour until the softphone process ends; its result."""
        behaviour = self.behaviour
        greeted = replied = bye_sent = referred = False
        caller_spoke_at = None
        deadline = time.monotonic() + limit
        while proc.poll() is None and time.monotonic() < deadline:
            self.ep.libHandleEvents(20)
            if not self.seen.confirmed or self.seen.disconnected_at is not None or self.audio is None:
                continue
            now = time.monotonic()
            if not greeted and behaviour.greeting is not None and now - self.seen.connected_at > 0.3:
                self.audio.speak(behaviour.greeting)
                greeted = True
            greeting_done = greeted and self.audio.speech_end_at is not None
            if greeting_done and behaviour.bye_after_greeting is not None and not bye_sent \
                    and now - self.audio.speech_end_at > behaviour.bye_after_greeting:
                self.call.hangup(pj.CallOpParam())
                bye_sent = True
            if greeting_done and behaviour.refer_to and not referred and now - self.audio.speech_end_at > 0.5:
                self.call.xfer(behaviour.refer_to, pj.CallOpParam())
                referred = True
            # Reply once the caller has spoken and been quiet for 300 ms.
            if greeting_done and behaviour.reply is not None and not replied:
                caller_spoke_at = self.audio.first_voice_after(self.audio.speech_end_at)
                if caller_spoke_at and now - self.audio.last_voice_at > 0.3:
                    self.audio.speak(behaviour.reply)
                    replied = True
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
        for _ in range(25):  # let the BYE/ACK finish
            self.ep.libHandleEvents(20)
        result = result_from_process(out, err)
        result.stderr = err  # type: ignore[attr-defined]
        result.returncode = proc.returncode  # type: ignore[attr-defined]
        return result

    def received(self) -> np.ndarray:
        return self.audio.all_received() if self.audio else np.zeros(0, np.int16)

    def reset(self, behaviour: Behaviour) -> None:
        if self.media_port is not None:
            self.call = None
            self.media_port = None
        self.behaviour, self.seen, self.audio = behaviour, Seen(), None

    def close(self) -> None:
        self.call = None
        self.media_port = None
        self.account.shutdown()
        self.ep.libDestroy()


@pytest.fixture(scope="module")
def answerer():
    agent = Answerer()
    yield agent
    agent.close()


def options(answerer: Answerer, **kwargs) -> CallOptions:
    defaults = {"server": answerer.server, "number": "+15550100", "transcribe": False, "timeout": 5}
    return CallOptions(**{**defaults, **kwargs})


def test_call_exchanges_paced_audio_both_ways(answerer, tmp_path):
    """INVITE/200/ACK, the caller's WAV (8 kHz, resampled) reaches the other side in real time, and the
    other side's greeting and reply are recorded; voice-to-voice is measured from the end of the caller's speech."""
    caller_wav = tmp_path / "question.wav"
    write_wav(caller_wav, tone(1000, 1.5, rate=8000), rate=8000)
    answerer.reset(Behaviour(greeting=tone(440, 1.0), reply=tone(660, 0.8)))
    record = tmp_path / "heard.wav"
    started = time.monotonic()
    result = answerer.serve(run_call_process(options(answerer, play=[str(caller_wav)], record=str(record))))
    duration = time.monotonic() - started
    assert result.ok, result.stderr
    assert answerer.seen.confirmed, "the answering side never got the ACK"
    assert result.answered_ms is not None and result.answered_ms < 2000
    assert result.hangup_by == "caller"
    assert result.codec and result.codec.startswith("G722")

    # The other side heard the caller's 1 kHz tone for about its length.
    heard_by_agent = answerer.received()
    assert abs(voiced_seconds(heard_by_agent) - 1.5) < 0.25
    voiced = heard_by_agent[np.abs(heard_by_agent) > 2000]
    assert abs(dominant_frequency(heard_by_agent) - 1000) < 20, voiced.size

    # RTP is paced: one packet per 20 ms of call, in both directions.
    call_seconds = (answerer.seen.disconnected_at - answerer.seen.connected_at)
    assert call_seconds < duration
    assert abs(answerer.seen.rx_packets - call_seconds * 50) < 0.15 * call_seconds * 50 + 10
    assert abs(result.rtp_packets_sent - answerer.seen.rx_packets) < 10

    # The caller recorded the greeting (440 Hz) then the reply (660 Hz).
    assert result.greeting_ms is not None and result.greeting_ms > result.answered_ms
    assert len(result.turns) == 1
    turn = result.turns[0]
    assert abs(turn.speech_ms - 1500) < 25
    # The answerer waits 300 ms of silence before replying; the path adds jitter buffer and frame delays.
    assert 250 < turn.voice_to_voice_ms < 1500
    heard = read_wav(record)
    with wave.open(str(record)) as wav:
        assert wav.getframerate() == PORT_RATE
    greeting_start = int((result.greeting_ms - result.answered_ms) / 1000 * PORT_RATE)
    assert abs(dominant_frequency(heard[: heard.size // 2]) - 440) < 20
    assert abs(dominant_frequency(heard[heard.size // 2:]) - 660) < 20
    assert greeting_start >= 0
    assert 1.6 < voiced_seconds(heard) < 2.1
    # The greeting's and the reply's places in the recording, for transcription.
    start, end = result.segments["greeting"]
    assert abs(dominant_frequency(heard[start:end]) - 440) < 20 and 0.9 < (end - start) / PORT_RATE < 1.3
    start, end = result.segments["0"]
    assert abs(dominant_frequency(heard[start:end]) - 660) < 20 and 0.7 < (end - start) / PORT_RATE < 1.1


def test_dtmf_digits_reach_the_other_side(answerer):
    answerer.reset(Behaviour(greeting=tone(440, 0.5)))
    result = answerer.serve(run_call_process(options(answerer, dtmf="123#")))
    assert result.ok, result.stderr
    assert result.dtmf_sent == "123#"
    assert answerer.seen.dtmf == "123#"


def test_remote_bye_is_reported(answerer):
    answerer.reset(Behaviour(greeting=tone(440, 0.5), bye_after_greeting=0.5))
    result = answerer.serve(run_call_process(options(answerer, hangup_after=10)))
    assert result.ok, result.stderr
    assert result.hangup_by == "agent"
    # BYE came ~0.5 s after the greeting, long before the caller's own 10 s.
    assert result.hangup_ms - result.greeting_end_ms < 2000


def test_refer_is_reported(answerer):
    answerer.reset(Behaviour(greeting=tone(440, 0.5), refer_to="sip:+15550199@127.0.0.1:9"))
    result = answerer.serve(run_call_process(options(answerer, hangup_after=3, refer_response=603)))
    assert result.refer_to is not None and "+15550199" in result.refer_to
    assert result.refer_ms > result.greeting_ms


def test_busy_is_a_clear_error(answerer):
    answerer.reset(Behaviour(response=486))
    result = answerer.serve(run_call_process(options(answerer)))
    assert not result.ok
    assert result.status_code == 486
    assert result.error == "call rejected: 486 Busy Here"
    assert result.returncode != 0


def test_ringing_without_answer_is_bounded(answerer):
    answerer.reset(Behaviour(response=180))
    started = time.monotonic()
    result = answerer.serve(run_call_process(options(answerer, timeout=2)))
    assert time.monotonic() - started < 8
    assert result.ringing_ms is not None
    assert result.error == "rang for 2 s but nobody answered"
    assert result.returncode != 0


def test_no_answer_is_a_clear_error_and_nonzero_exit():
    # Nothing listens on this port: UDP brings no reply at all, so the softphone bounds the wait itself.
    proc = cli_call("--server", "127.0.0.1:9", "--timeout", "2")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == \
        "error: no answer from 127.0.0.1:9 within 2 s (is livekit-sip running there?)"
