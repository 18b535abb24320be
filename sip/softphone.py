"""A test softphone: dials like a real phone (pjsua2: SIP dialog, RTP paced in real time) and times the conversation.

One call per process (pjsua2 allows one library instance per process): `place_call()` runs a call in this process,
`place_call_in_subprocess()` runs it in a child process, so tests and the benchmark can place several at once.

Timeline of a call (all in ms from the INVITE): 180 Ringing, 200 OK, first agent audio (the greeting), then for each
caller utterance the end of the caller's speech -> first agent audio (voice-to-voice as the caller hears it).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# The port between the call and us runs at 16 kHz, so G.722 (wideband) reaches us unharmed; PCMU is resampled up.
PORT_RATE = 16000
FRAME_MS = 20
FRAME_SAMPLES = PORT_RATE * FRAME_MS // 1000
# Received audio louder than this (RMS of a 20 ms frame, int16) counts as the agent speaking; about -40 dBFS.
DEFAULT_VOICE_THRESHOLD = 330.0
CODECS = {"g722": "G722/16000", "pcmu": "PCMU/8000", "pcma": "PCMA/8000"}


class SoftphoneError(Exception):
    """A call that could not be placed or went wrong; the message is one line for the user."""


@dataclass
class CallOptions:
    server: str = "127.0.0.1:5060"
    number: str = "+15550100"
    caller_id: str = "+15550123"
    # Caller utterances: audio files (any rate; mixed to mono) and/or texts spoken with the local TTS, in this order.
    play: list[str] = field(default_factory=list)
    say: list[str] = field(default_factory=list)
    dtmf: str = ""
    record: str | None = None
    # Seconds to stay on the line after the last reply ended (0: hang up at once), unless the agent hangs up first.
    hangup_after: float = 0.0
    # Hang up this many seconds into the agent's reply to the last utterance (a caller who hangs up mid-answer).
    hangup_mid_reply: float | None = None
    # Bound on each wait: for an answer, for the greeting, for a reply to start.
    timeout: float = 30.0
    # The longest a single agent reply may last before we stop waiting for it to end.
    max_reply: float = 60.0
    # Silence that ends an agent reply.
    reply_silence: float = 1.0
    voice_threshold: float = DEFAULT_VOICE_THRESHOLD
    transcribe: bool = True
    # Codecs in order of preference; the first one the other side accepts is used.
    codecs: list[str] = field(default_factory=lambda: ["g722", "pcmu"])
    # Answer to a REFER: 202 accepts it (the softphone then leaves the call to the new party), >= 400 rejects it.
    refer_response: int = 202
    local_port: int = 0
    log_level: int = 0


@dataclass
class Turn:
    source: str
    speech_ms: float
    speech_end_ms: float | None = None
    reply_start_ms: float | None = None
    voice_to_voice_ms: float | None = None
    reply_end_ms: float | None = None
    reply_text: str | None = None


@dataclass
class CallResult:
    ok: bool = False
    error: str | None = None
    status_code: int | None = None
    reason: str | None = None
    codec: str | None = None
    ringing_ms: float | None = None
    answered_ms: float | None = None
    greeting_ms: float | None = None
    greeting_end_ms: float | None = None
    greeting_text: str | None = None
    turns: list[Turn] = field(default_factory=list)
    dtmf_sent: str = ""
    # "agent" (remote BYE), "caller" (we hung up), or None when the call never connected.
    hangup_by: str | None = None
    hangup_ms: float | None = None
    refer_to: str | None = None
    refer_ms: float | None = None
    # Final status of the call to the REFER target, when we accepted the REFER.
    refer_status: int | None = None
    rtp_packets_sent: int = 0
    rtp_packets_received: int = 0
    audio_sent_s: float = 0.0
    audio_received_s: float = 0.0
    recording: str | None = None
    # Where the greeting ("greeting") and each reply ("0", "1", ...) lie in the received audio: [first, last) samples.
    segments: dict[str, list[int]] = field(default_factory=dict)

    @property
    def agent_text(self) -> str:
        return " ".join(t for t in [self.greeting_text, *(turn.reply_text for turn in self.turns)] if t)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CallResult:
        data = json.loads(text)
        data["turns"] = [Turn(**turn) for turn in data.get("turns", [])]
        return cls(**data)

    def timeline(self) -> list[str]:
        """The human-readable timeline printed by `cli.py call`."""
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:7.0f} ms"

        lines = [f"INVITE           {ms(0.0)}"]
        if self.ringing_ms is not None:
            lines.append(f"180 Ringing      {ms(self.ringing_ms)}")
        if self.answered_ms is not None:
            lines.append(f"200 OK           {ms(self.answered_ms)}  codec {self.codec or '?'}")
        elif self.status_code:
            lines.append(f"{self.status_code} {self.reason or ''}".strip())
        if self.greeting_ms is not None:
            lines.append(f"greeting starts  {ms(self.greeting_ms)}")
            if self.greeting_text is not None:
                lines.append(f'  agent: "{self.greeting_text}"')
        if self.dtmf_sent:
            lines.append(f"DTMF sent        {self.dtmf_sent}")
        for number, turn in enumerate(self.turns, 1):
            lines.append(f"turn {number}: caller speaks {turn.speech_ms / 1000:.1f} s ({turn.source}), "
                         f"speech ends at {ms(turn.speech_end_ms)}")
            if turn.voice_to_voice_ms is not None:
                lines.append(f"  voice-to-voice {turn.voice_to_voice_ms:7.0f} ms (first agent audio at "
                             f"{ms(turn.reply_start_ms)})")
            else:
                lines.append("  no reply from the agent")
            if turn.reply_text is not None:
                lines.append(f'  agent: "{turn.reply_text}"')
        if self.refer_to:
            lines.append(f"REFER            {ms(self.refer_ms)}  to {self.refer_to}"
                         + (f" (call to it ended {self.refer_status})" if self.refer_status else ""))
        if self.hangup_by:
            who = "the agent hung up (BYE)" if self.hangup_by == "agent" else "the caller hung up"
            lines.append(f"hangup           {ms(self.hangup_ms)}  {who}")
        lines.append(f"RTP sent {self.rtp_packets_sent} packets ({self.audio_sent_s:.1f} s), "
                     f"received {self.rtp_packets_received} packets ({self.audio_received_s:.1f} s of audio)")
        if self.recording:
            lines.append(f"recording        {self.recording}")
        if self.error:
            lines.append(f"error: {self.error}")
        return lines


# ---------------------------------------------------------------- audio input


def load_wav(path: str | Path) -> np.ndarray:
    """An audio file (WAV at any rate, any channel count) as int16 mono at the port rate."""
    from local_openai.audio import AudioDecodeError, decode_to_mono

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SoftphoneError(f"cannot read audio file {path}: {error.strerror}") from None
    try:
        samples = decode_to_mono(data, PORT_RATE)
    except AudioDecodeError as error:
        raise SoftphoneError(f"cannot play {path}: {error}") from None
    return np.clip(samples * 32767.0, -32768, 32767).astype(np.int16)


def synthesize(text: str, tts=None) -> np.ndarray:
    """`text` spoken by the local Piper voice, int16 mono at the port rate."""
    from local_openai.audio import StreamResampler

    if tts is None:
        from local_openai.tts import TextToSpeech

        print("loading the local TTS voice for --say ...", file=sys.stderr, flush=True)
        tts = TextToSpeech()
    resampler = StreamResampler(tts.sample_rate, PORT_RATE)
    chunks = [resampler.push(chunk) for chunk in tts.synthesize(text)]
    chunks.append(resampler.push(None))
    audio = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
    if audio.size == 0:
        raise SoftphoneError(f"the TTS produced no audio for {text!r}")
    return audio


def prepare_utterances(options: CallOptions, tts=None) -> list[tuple[str, np.ndarray]]:
    """All caller utterances, decoded before dialing so that synthesis never delays the call."""
    utterances = [(Path(path).name, load_wav(path)) for path in options.play]
    for text in options.say:
        utterances.append((f"say: {text}", synthesize(text, tts)))
    return utterances


def write_wav(path: str | Path, samples: np.ndarray, rate: int = PORT_RATE) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())


# ---------------------------------------------------------------- the call

def _pj():
    try:
        import pjsua2
    except ImportError as error:  # pragma: no cover - pinned in pyproject
        raise SoftphoneError(f"pjsua2 is not installed ({error}); run pip install -e .") from None
    return pjsua2


class _Audio:
    """What the media thread shares with the call loop: the outgoing queue and everything received."""

    def __init__(self, threshold: float):
        self.lock = threading.Lock()
        self.threshold = threshold
        self.outgoing: np.ndarray | None = None
        self.out_pos = 0
        self.speech_end_at: float | None = None
        self.sent_frames = 0
        self.received: list[np.ndarray] = []
        self.voiced_frames: list[int] = []  # indices of received frames above the threshold
        self.frame_times: list[float] = []
        self.last_voice_at: float | None = None

    def speak(self, samples: np.ndarray) -> None:
        with self.lock:
            self.outgoing, self.out_pos, self.speech_end_at = samples, 0, None

    def next_frame(self) -> bytes:
        with self.lock:
            self.sent_frames += 1
            if self.outgoing is None:
                return bytes(FRAME_SAMPLES * 2)  # silence keeps RTP flowing, or livekit-sip ends the call
            chunk = self.outgoing[self.out_pos:self.out_pos + FRAME_SAMPLES]
            self.out_pos += FRAME_SAMPLES
            if self.out_pos >= self.outgoing.size:
                self.outgoing = None
                self.speech_end_at = time.monotonic()
            if chunk.size < FRAME_SAMPLES:
                chunk = np.concatenate([chunk, np.zeros(FRAME_SAMPLES - chunk.size, np.int16)])
            return chunk.astype("<i2").tobytes()

    def frame_received(self, data: bytes) -> None:
        now = time.monotonic()
        samples = np.frombuffer(data, dtype="<i2").copy()
        voiced = samples.size > 0 and float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > self.threshold
        with self.lock:
            self.received.append(samples)
            self.frame_times.append(now)
            if voiced:
                self.voiced_frames.append(len(self.received) - 1)
                self.last_voice_at = now

    def first_voice_after(self, moment: float) -> float | None:
        """When the first voiced frame at or after `moment` arrived."""
        with self.lock:
            first = None
            for index in reversed(self.voiced_frames):
                if self.frame_times[index] < moment:
                    break
                first = self.frame_times[index]
            return first

    def sample_range(self, start: float, end: float) -> list[int]:
        """[first, last) sample offsets in the received audio of the frames that arrived between two moments."""
        with self.lock:
            inside = [i for i, t in enumerate(self.frame_times) if start <= t <= end]
        return [inside[0] * FRAME_SAMPLES, (inside[-1] + 1) * FRAME_SAMPLES] if inside else [0, 0]

    def all_received(self) -> np.ndarray:
        with self.lock:
            return np.concatenate(self.received) if self.received else np.zeros(0, np.int16)


def place_call(options: CallOptions, tts=None, stt=None, progress: Callable[[str], None] | None = None) -> CallResult:
    """Places one call in this process; its timeline. Raises SoftphoneError on bad input (unreadable audio)."""
    utterances = prepare_utterances(options, tts)
    if options.transcribe and stt is None:
        from local_openai.stt import SpeechToText

        (progress or (lambda _m: None))("loading the local STT model to transcribe the agent ...")
        stt = SpeechToText()
    call = _Call(options, utterances, progress or (lambda _m: None))
    result = call.run()
    if options.transcribe and stt is not None:
        transcribe_result(result, stt, call.received)
    return result


def transcribe_result(result: CallResult, stt, received: np.ndarray | None = None) -> CallResult:
    """Fills in what the agent said (greeting, each reply) from the received audio, or from result.recording."""
    if received is None:
        if not result.recording:
            raise SoftphoneError("nothing to transcribe: the call was not recorded")
        with wave.open(result.recording) as wav:
            received = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    for key, (start, end) in result.segments.items():
        audio = received[start:end]
        if audio.size == 0:
            continue
        text = stt.transcribe(audio.astype(np.float32) / 32768.0, PORT_RATE).strip()
        if key == "greeting":
            result.greeting_text = text
        else:
            result.turns[int(key)].reply_text = text
    return result


class _Call:
    def __init__(self, options: CallOptions, utterances: list[tuple[str, np.ndarray]], progress):
        self.options = options
        self.utterances = utterances
        self.progress = progress
        self.result = CallResult()
        self.audio = _Audio(options.voice_threshold)
        self.state = "calling"  # calling -> confirmed -> disconnected
        self.we_hung_up = False
        self.t0 = 0.0
        self.received = np.zeros(0, np.int16)

    def ms(self, moment: float | None) -> float | None:
        return None if moment is None else round((moment - self.t0) * 1000.0, 1)

    # ------------------------------------------------------------ pjsua2 plumbing
    def run(self) -> CallResult:
        pj = _pj()
        ep = pj.Endpoint()
        _quietly(ep.libCreate)
        call = port = account = None
        try:
            config = pj.EpConfig()
            config.uaConfig.threadCnt = 0
            config.uaConfig.mainThreadOnly = False
            config.uaConfig.userAgent = "phone-assistant-softphone"
            config.logConfig.level = self.options.log_level
            config.logConfig.consoleLevel = self.options.log_level
            config.medConfig.clockRate = PORT_RATE
            config.medConfig.sndClockRate = PORT_RATE
            config.medConfig.noVad = True  # no silence suppression: RTP every 20 ms for the whole call
            config.medConfig.ecTailLen = 0
            ep.libInit(config)
            transport = pj.TransportConfig()
            transport.port = self.options.local_port
            transport.boundAddress = "127.0.0.1"
            transport.publicAddress = "127.0.0.1"
            ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
            ep.libStart()
            ep.audDevManager().setNullDev()
            self._set_codecs(ep)

            account_config = pj.AccountConfig()
            account_config.idUri = f"sip:{self.options.caller_id}@127.0.0.1"
            account_config.natConfig.iceEnabled = False
            account_config.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
            account_config.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
            account_config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
            account_config.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
            account = pj.Account()
            account.create(account_config)

            port = _make_port(pj, self.audio)
            call = _make_call(pj, account, self, port)
            self.t0 = time.monotonic()
            try:
                call.makeCall(f"sip:{self.options.number}@{self.options.server}", pj.CallOpParam(True))
            except pj.Error as error:
                self.result.error = f"cannot dial sip:{self.options.number}@{self.options.server}: {error.reason}"
                return self.result
            self._converse(ep, call)
            self._finish(call)
        finally:
            self._wait_disconnected(ep, 5.0)
            # pjmedia aborts if a port is collected after libDestroy(): release them first.
            if call is not None:
                call.port = None
            del call
            del port
            if account is not None:
                account.shutdown()
            # A SWIG object left in a reference cycle and collected after libDestroy() segfaults (seen once in CI,
            # in the collection json.dumps triggered): collect while the library is still alive.
            gc.collect()
            ep.libDestroy()
        return self.result

    def _set_codecs(self, ep) -> None:
        wanted = []
        for name in self.options.codecs:
            if name.lower() not in CODECS:
                raise SoftphoneError(f"unknown codec {name!r}; choose from {', '.join(CODECS)}")
            wanted.append(CODECS[name.lower()])
        for info in ep.codecEnum2():
            priority = 0
            for rank, codec_id in enumerate(wanted):
                if info.codecId.lower().startswith(codec_id.lower()):
                    priority = 255 - rank
            ep.codecSetPriority(info.codecId, priority)

    def _pump(self, ep, seconds: float = 0.02) -> None:
        ep.libHandleEvents(int(seconds * 1000))

    def _wait(self, ep, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            self._pump(ep)
        return condition()

    def _wait_disconnected(self, ep, timeout: float) -> None:
        try:
            self._wait(ep, lambda: self.state == "disconnected", timeout)
        except Exception:  # best effort while tearing down
            pass

    # ------------------------------------------------------------ events (pjsua2 callbacks)
    def on_state(self, call) -> None:
        pj = _pj()
        info = call.getInfo()
        now = time.monotonic()
        if info.state == pj.PJSIP_INV_STATE_EARLY and info.lastStatusCode in (180, 183):
            if self.result.ringing_ms is None:
                self.result.ringing_ms = self.ms(now)
        elif info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.state = "confirmed"
            self.result.answered_ms = self.ms(now)
            self.result.status_code = 200
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if self.state == "confirmed":
                self.result.hangup_by = "caller" if self.we_hung_up else "agent"
                self.result.hangup_ms = self.ms(now)
            elif self.result.error is None:  # not our own CANCEL after a timeout
                self.result.status_code = info.lastStatusCode
                self.result.reason = info.lastReason
            self.state = "disconnected"

    def on_media(self, call, port) -> None:
        pj = _pj()
        info = call.getInfo()
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                call_audio = call.getAudioMedia(media.index)
                call_audio.startTransmit(port)
                port.startTransmit(call_audio)
                try:
                    stream = call.getStreamInfo(media.index)
                    self.result.codec = f"{stream.codecName}/{stream.codecClockRate}"
                except Exception:  # informational only
                    pass
                self.media_index = media.index

    def on_refer(self, prm) -> None:
        # Accepted (202), pjsua dials the target itself, as a phone would; the outcome lands in refer_status.
        self.result.refer_to = prm.dstUri
        self.result.refer_ms = self.ms(time.monotonic())
        prm.statusCode = self.options.refer_response

    def on_refer_status(self, prm) -> None:
        if prm.finalNotify:
            self.result.refer_status = prm.statusCode

    def _collect_stats(self, call) -> None:
        try:
            stat = call.getStreamStat(getattr(self, "media_index", 0))
            self.result.rtp_packets_sent = stat.rtcp.txStat.pkt
            self.result.rtp_packets_received = stat.rtcp.rxStat.pkt
        except Exception:  # no media ever started
            pass

    # ------------------------------------------------------------ the conversation
    def _converse(self, ep, call) -> None:
        options, result, audio = self.options, self.result, self.audio
        self.progress(f"calling sip:{options.number}@{options.server} ...")
        answered = self._wait(ep, lambda: self.state != "calling", options.timeout)
        if not answered:
            if result.ringing_ms is not None:
                result.error = f"rang for {options.timeout:.0f} s but nobody answered"
            else:
                result.error = (f"no answer from {options.server} within {options.timeout:.0f} s "
                                f"(is livekit-sip running there?)")
            return
        if self.state == "disconnected":
            result.error = f"call rejected: {result.status_code} {result.reason}"
            return
        self.progress(f"answered after {result.answered_ms:.0f} ms")

        # The greeting: the agent speaks first.
        greeting_at = self._wait_voice(ep, self.t0, options.timeout)
        if greeting_at is None:
            if self.state == "confirmed":
                result.error = f"no audio from the agent within {options.timeout:.0f} s of the answer"
            return
        result.greeting_ms = self.ms(greeting_at)
        greeting_end = self._wait_reply_end(ep, greeting_at)
        result.greeting_end_ms = self.ms(greeting_end)
        result.segments["greeting"] = audio.sample_range(greeting_at - 0.1, greeting_end)

        if options.dtmf and self.state == "confirmed":
            call.dialDtmf(options.dtmf)
            result.dtmf_sent = options.dtmf
            self._wait(ep, lambda: self.state != "confirmed", 0.5 + 0.2 * len(options.dtmf))

        for number, (source, samples) in enumerate(self.utterances):
            if self.state != "confirmed":
                break
            turn = Turn(source=source, speech_ms=round(samples.size / PORT_RATE * 1000.0, 1))
            result.turns.append(turn)
            audio.speak(samples)
            self._wait(ep, lambda: audio.speech_end_at is not None or self.state != "confirmed",
                       samples.size / PORT_RATE + 10)
            if audio.speech_end_at is None:
                break
            speech_end = audio.speech_end_at
            turn.speech_end_ms = self.ms(speech_end)
            reply_at = self._wait_voice(ep, speech_end, options.timeout)
            if reply_at is None:
                continue
            turn.reply_start_ms = self.ms(reply_at)
            turn.voice_to_voice_ms = round((reply_at - speech_end) * 1000.0, 1)
            last = number == len(self.utterances) - 1
            if last and options.hangup_mid_reply is not None:
                self._wait(ep, lambda: self.state != "confirmed", options.hangup_mid_reply)
                result.segments[str(number)] = audio.sample_range(reply_at - 0.1, time.monotonic())
                return
            reply_end = self._wait_reply_end(ep, reply_at)
            turn.reply_end_ms = self.ms(reply_end)
            result.segments[str(number)] = audio.sample_range(reply_at - 0.1, reply_end)

        if self.state == "confirmed" and options.hangup_after > 0:
            self._wait(ep, lambda: self.state != "confirmed", options.hangup_after)

    def _wait_voice(self, ep, after: float, timeout: float) -> float | None:
        found: list[float] = []

        def voiced() -> bool:
            moment = self.audio.first_voice_after(after)
            if moment is not None:
                found.append(moment)
                return True
            return self.state == "disconnected"

        self._wait(ep, voiced, timeout)
        return found[0] if found else None

    def _wait_reply_end(self, ep, started: float) -> float:
        """When the agent's reply ended: `reply_silence` seconds without voice (or the call ended)."""
        silence = self.options.reply_silence

        def ended() -> bool:
            last = self.audio.last_voice_at or started
            return self.state != "confirmed" or time.monotonic() - last >= silence

        self._wait(ep, ended, self.options.max_reply)
        return (self.audio.last_voice_at or started) + FRAME_MS / 1000.0

    def _finish(self, call) -> None:
        pj = _pj()
        result = self.result
        if self.state == "confirmed":
            self.we_hung_up = True
            try:
                call.hangup(pj.CallOpParam(True))
            except pj.Error:
                pass
        elif self.state == "calling":
            try:
                call.hangup(pj.CallOpParam(True))  # CANCEL the unanswered INVITE
            except pj.Error:
                pass
        received = self.received = self.audio.all_received()
        result.audio_received_s = round(received.size / PORT_RATE, 2)
        result.audio_sent_s = round(self.audio.sent_frames * FRAME_MS / 1000.0, 2)
        if self.options.record:
            write_wav(self.options.record, received)
            result.recording = str(self.options.record)
        result.ok = result.error is None and result.answered_ms is not None


def _quietly(function) -> None:
    """Runs `function` with stdout closed: pjlib logs its start-up to stdout before any log level applies."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        function()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _make_port(pj, audio: _Audio):
    class Port(pj.AudioMediaPort):
        def onFrameRequested(self, frame):  # noqa: N802 - pjsua2 API
            frame.type = pj.PJMEDIA_TYPE_AUDIO
            frame.buf = pj.ByteVector(audio.next_frame())
            frame.size = FRAME_SAMPLES * 2

        def onFrameReceived(self, frame):  # noqa: N802 - pjsua2 API
            if frame.type == pj.PJMEDIA_TYPE_AUDIO and frame.size:
                audio.frame_received(bytes(bytearray(frame.buf)))

    port = Port()
    fmt = pj.MediaFormatAudio()
    fmt.init(pj.PJMEDIA_FORMAT_PCM, PORT_RATE, 1, FRAME_MS * 1000, 16)
    port.createPort("softphone", fmt)
    return port


def _make_call(pj, account, owner: _Call, port):
    class SoftphoneCall(pj.Call):
        def onCallState(self, prm):  # noqa: N802 - pjsua2 API
            owner.on_state(self)

        def onCallMediaState(self, prm):  # noqa: N802 - pjsua2 API
            owner.on_media(self, self.port)

        def onCallTransferRequest(self, prm):  # noqa: N802 - pjsua2 API
            owner.on_refer(prm)

        def onCallTransferStatus(self, prm):  # noqa: N802 - pjsua2 API
            owner.on_refer_status(prm)

        def onStreamDestroyed(self, prm):  # noqa: N802 - pjsua2 API; the last moment RTP counters exist
            owner._collect_stats(self)

    call = SoftphoneCall(account)
    call.port = port
    return call


# ---------------------------------------------------------------- one call per child process

def place_call_in_subprocess(options: CallOptions, timeout: float | None = None,
                             env: dict[str, str] | None = None, crash_retries: int = 1) -> CallResult:
    """Runs `place_call(options)` in a child process (pjsua2 allows one library per process); its result.

    A child that dies without a result (a native crash inside pjsua2: rare, but seen once in 12 benchmark calls
    on a loaded machine) is run again, up to `crash_retries` times, and says so on stderr.
    """
    for attempt in range(crash_retries + 1):
        proc = run_call_process(options, env)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return CallResult(error=f"the softphone process did not finish within {timeout} s: {err.strip()[-300:]}")
        result = result_from_process(out, err, proc.returncode)
        if not result.error or not result.error.startswith(CRASHED) or attempt == crash_retries:
            return result
        print(f"{result.error}; placing the call again", file=sys.stderr, flush=True)
    return result


def run_call_process(options: CallOptions, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Starts a child softphone; read its result with `result_from_process(*proc.communicate())`."""
    # faulthandler: a crash in the media thread still leaves a Python traceback on stderr.
    command = [sys.executable, "-X", "faulthandler", "-m", "sip.softphone", json.dumps(asdict(options))]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent, env={**os.environ, **(env or {})})


CRASHED = "the softphone process ended without a result"


def result_from_process(out: str, err: str, returncode: int | None = None) -> CallResult:
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            try:
                return CallResult.from_json(line)
            except (ValueError, TypeError):  # another JSON line on stdout (a library's log): not our result
                continue
    lines = [line for line in err.strip().splitlines() if line.strip()]
    how = f" (exit status {returncode})" if returncode is not None else ""
    # faulthandler's report: the fatal error and the innermost Python frame say where it died.
    fatal = [line.strip() for line in lines if line.startswith("Fatal Python error")]
    frames = [line.strip() for line in lines if line.strip().startswith("File ")]
    detail = "; ".join(fatal[:1] + frames[:1]) or (lines[-1] if lines else "")
    return CallResult(error=f"{CRASHED}{how}" + (f"; {detail}" if detail else ""))


def _child_main(argv: list[str]) -> int:
    options = CallOptions(**json.loads(argv[0]))
    try:
        result = place_call(options, progress=lambda m: print(m, file=sys.stderr, flush=True))
    except SoftphoneError as error:
        result = CallResult(error=str(error))
    print(result.to_json(), flush=True)
    sys.stderr.flush()
    # Skip interpreter teardown: it would run the destructors of pjsua2 objects still referenced after libDestroy().
    os._exit(0 if result.ok else 1)


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
