"""The SIP call itself: pjsua2 dials like a real phone (SIP dialog, RTP paced in real time), plays the caller's
utterances and times the agent's answers (see results.py for the timeline).

pjsua2 allows one library instance per process, so `place_call()` places one call in this process; runner.py runs
calls in child processes, so that tests and the benchmark can place several at once. pjsua2 comes with the `test`
extra and is imported only when a call is placed.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tools.softphone.media import (
    FRAME_MS,
    PORT_RATE,
    CallAudio,
    load_wav,
    make_media_port,
    read_wav,
    synthesize,
    write_wav,
)
from tools.softphone.results import KEYS_PREFIX, CallOptions, CallResult, SoftphoneError, Turn

CODECS = {"g722": "G722/16000", "pcmu": "PCMU/8000", "pcma": "PCMA/8000"}
# CallOptions.answer: the final response to an incoming INVITE (None: none, it rings until cancelled).
ANSWERS = {"answer": 200, "busy": 486, "decline": 603, "ring": None}


def prepare_utterances(options: CallOptions, tts=None) -> list[tuple[str, np.ndarray]]:
    """All caller utterances, decoded before dialing so that synthesis never delays the call."""
    utterances = [(Path(path).name, load_wav(path)) for path in options.play]
    for text in options.say:
        if text.startswith(KEYS_PREFIX):  # a turn of keypad digits, sent as RFC 4733 events
            utterances.append((text, np.zeros(0, dtype=np.int16)))
        else:
            utterances.append((f"say: {text}", synthesize(text, tts)))
    return utterances


# ---------------------------------------------------------------- the call

def pjsua2_module():
    """The pjsua2 module; a one-line SoftphoneError saying how to install it when it is missing."""
    try:
        import pjsua2
    except ImportError:
        python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd() + os.sep) else sys.executable
        raise SoftphoneError(f"pjsua2 is not installed: the softphone needs the test extra; install it with "
                             f"{python} -m pip install -e '.[test]'") from None
    return pjsua2


def place_call(options: CallOptions, tts=None, stt=None, progress: Callable[[str], None] | None = None) -> CallResult:
    """Places one call in this process; its timeline. Raises SoftphoneError on bad input (unreadable audio) or when
    pjsua2 is missing, before any model is loaded."""
    pjsua2_module()
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


def transcribe_result(result: CallResult, stt, received: np.ndarray | None = None, *,
                      prompt: str | None = None) -> CallResult:
    """Fills in what the agent said (greeting, each reply) from the received audio, or from result.recording.
    `prompt`: words to prime the transcription with (the business's own, as the agent's STT gets them)."""
    if received is None:
        if not result.recording:
            raise SoftphoneError("nothing to transcribe: the call was not recorded")
        received = read_wav(result.recording)
    for key, (start, end) in result.segments.items():
        audio = received[start:end]
        if audio.size == 0:
            continue
        text = stt.transcribe(audio.astype(np.float32) / 32768.0, PORT_RATE, prompt=prompt, timestamps=True).strip()
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
        self.audio = CallAudio(options.voice_threshold)
        self.state = "calling"  # calling -> confirmed -> disconnected
        self.we_hung_up = False
        self.t0 = 0.0
        self.received = np.zeros(0, np.int16)

    def ms(self, moment: float | None) -> float | None:
        return None if moment is None else round((moment - self.t0) * 1000.0, 1)

    # ------------------------------------------------------------ pjsua2 plumbing
    def run(self) -> CallResult:
        pj = pjsua2_module()
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
            transport.boundAddress = self.options.bind_address
            transport.publicAddress = self.options.bind_address
            ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
            ep.libStart()
            ep.audDevManager().setNullDev()
            self._set_codecs(ep)

            account_config = pj.AccountConfig()
            account_config.idUri = f"sip:{self.options.caller_id}@{self.options.bind_address}"
            account_config.natConfig.iceEnabled = False
            account_config.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
            account_config.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
            account_config.mediaConfig.transportConfig.boundAddress = self.options.bind_address
            account_config.mediaConfig.transportConfig.publicAddress = self.options.bind_address
            if self.options.srtp:
                account_config.mediaConfig.srtpUse = {
                    "optional": pj.PJMEDIA_SRTP_OPTIONAL, "mandatory": pj.PJMEDIA_SRTP_MANDATORY}[self.options.srtp]
                account_config.mediaConfig.srtpSecureSignaling = 0  # SDES keys over UDP: a test of SRTP only
            account = _account(pj)
            account.create(account_config)

            port = make_media_port(pj, self.audio)
            if self.options.answer:
                call = self._answer(pj, ep, account, port)
                if call is None:
                    return self.result
            else:
                call = _make_call(pj, account, self, port)
                self.t0 = self.result.started_at = time.monotonic()
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
            # A SWIG object left in a reference cycle and collected after libDestroy() segfaults (seen twice, in the
            # collection json.dumps triggered): collect while the library is alive, and no more after, since
            # libDestroy's own callbacks can leave new cycles. One call per process, so nothing piles up.
            gc.collect()
            gc.disable()
            ep.libDestroy()
        return self.result

    def _answer(self, pj, ep, account, port):
        """Waits for one incoming call and answers it as CallOptions.answer says; the call, or None (none came)."""
        if self.options.answer not in ANSWERS:
            raise SoftphoneError(f"unknown answer {self.options.answer!r}; choose from {', '.join(ANSWERS)}")
        calls: list = []
        final = ANSWERS[self.options.answer]
        rejecting = final is not None and final >= 400

        def incoming(call_id: int) -> None:  # pjsua2 wants the call taken in its callback
            if calls and not rejecting:
                return
            call = _make_call(pj, account, self, port, call_id=call_id)
            response = pj.CallOpParam()
            response.statusCode = final if rejecting else 180
            if not calls:
                self.t0 = self.result.started_at = time.monotonic()
                self.result.remote_uri = call.getInfo().remoteUri
            call.answer(response)
            calls.append(call)

        account.on_incoming = incoming
        self.progress(f"waiting for a call on {self.options.bind_address}:{self.options.local_port} ...")
        if rejecting:  # a busy or declining phone answers every call alike, until it is stopped
            self._wait(ep, lambda: False, self.options.timeout)
            self.result.rejected_calls = len(calls)
            return None
        if not self._wait(ep, lambda: bool(calls), self.options.timeout):
            self.result.error = f"no call came within {self.options.timeout:.0f} s"
            return None
        if final is not None:
            self._pump(ep, 0.3)  # a phone rings a moment before it is picked up
            answered = pj.CallOpParam()
            answered.statusCode = final
            calls[0].answer(answered)
        return calls[0]

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
        pj = pjsua2_module()
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
                self.result.rejected_ms = self.ms(now)
            self.state = "disconnected"

    def on_media(self, call, port) -> None:
        pj = pjsua2_module()
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
        if not options.answer:
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

        if not options.answer:  # the agent, called, speaks first: its greeting
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
            if source.startswith(KEYS_PREFIX):
                call.dialDtmf(source[len(KEYS_PREFIX):].strip())
                speech_end = time.monotonic()
            else:
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
        pj = pjsua2_module()
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


def _make_call(pj, account, owner: _Call, port, call_id: int | None = None):
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

    call = SoftphoneCall(account) if call_id is None else SoftphoneCall(account, call_id)
    call.port = port
    return call


def _account(pj):
    """A pjsua2 account that hands each incoming call's id to its `on_incoming`."""
    class Account(pj.Account):
        def __init__(self) -> None:
            super().__init__()
            self.on_incoming: Callable[[int], None] = lambda _call_id: None

        def onIncomingCall(self, prm):  # noqa: N802 - pjsua2 API
            self.on_incoming(prm.callId)

    return Account()
