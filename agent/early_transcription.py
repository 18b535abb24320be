"""Transcription that starts at the caller's first short silence instead of at the end of their speech.

livekit-agents' StreamAdapter sends a non-streaming STT the caller's audio when the VAD ends the speech (0.35 s of
silence here), and the turn waits for Whisper's whole run (about 0.4 s on two cores) after that. This adapter starts
the same request as soon as the caller has been silent for `speculate_after` (0.15 s): if the silence lasts until the
VAD ends the speech, that transcript is the turn's, and it is ready about 0.2 s sooner; if the caller speaks again,
the request is dropped and the whole speech is transcribed at its end, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from livekit import rtc
from livekit.agents import stt, utils
from livekit.agents.stt.stream_adapter import StreamAdapter, StreamAdapterWrapper
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions, NotGivenOr
from livekit.agents.vad import VAD, VADEventType

log = logging.getLogger("agent.early_transcription")

SPECULATE_AFTER = 0.15  # seconds of silence; the VAD ends a speech at 0.35 s (agent/worker.py)


class EarlyTranscription(StreamAdapter):
    """StreamAdapter(stt=..., vad=...) whose transcription starts at the first short silence."""

    def __init__(self, *, stt: stt.STT, vad: VAD, speculate_after: float = SPECULATE_AFTER) -> None:
        super().__init__(stt=stt, vad=vad)
        self._speculate_after = speculate_after

    def stream(self, *, language: NotGivenOr[str] = NOT_GIVEN,
               conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> stt.RecognizeStream:
        return _EarlyStream(self, vad=self._vad, wrapped_stt=self._stt, language=language,
                            conn_options=conn_options, speculate_after=self._speculate_after)


class _EarlyStream(StreamAdapterWrapper):
    def __init__(self, *args, speculate_after: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._speculate_after = speculate_after
        self.early_used = self.early_dropped = 0  # how the speculations went (tests read these)

    def _recognize(self, frames: list[rtc.AudioFrame]) -> asyncio.Task[stt.SpeechEvent]:
        task = asyncio.create_task(self._wrapped_stt.recognize(
            buffer=utils.merge_frames(frames), language=self._language, conn_options=self._wrapped_stt_conn_options))
        task.add_done_callback(lambda done: done.cancelled() or done.exception())  # a dropped one's error is moot
        return task

    async def _run(self) -> None:
        vad_stream = self._vad.stream()

        async def forward_input() -> None:
            async for frame in self._input_ch:
                if isinstance(frame, self._FlushSentinel):
                    vad_stream.flush()
                else:
                    vad_stream.push_frame(frame)
            vad_stream.end_input()

        async def recognize() -> None:
            speech: list[rtc.AudioFrame] = []  # since the start of speech, its padding included
            early: asyncio.Task[stt.SpeechEvent] | None = None
            try:
                async for event in vad_stream:
                    if event.type == VADEventType.START_OF_SPEECH:
                        speech = list(event.frames)  # the VAD's buffer: padding and the first windows
                        self._event_ch.send_nowait(stt.SpeechEvent(stt.SpeechEventType.START_OF_SPEECH))
                    elif event.type == VADEventType.INFERENCE_DONE and event.speaking:
                        speech.extend(event.frames)
                        if early is not None and event.raw_accumulated_silence == 0.0:  # the caller spoke again
                            early.cancel()
                            early, self.early_dropped = None, self.early_dropped + 1
                        elif early is None and event.raw_accumulated_silence >= self._speculate_after:
                            early = self._recognize(speech)
                    elif event.type == VADEventType.END_OF_SPEECH:
                        speech_end_time = time.time() - event.silence_duration - event.inference_duration
                        self._event_ch.send_nowait(stt.SpeechEvent(stt.SpeechEventType.END_OF_SPEECH,
                                                                   speech_end_time=speech_end_time))
                        if early is not None:
                            pending, early, self.early_used = early, None, self.early_used + 1
                            try:
                                heard = await pending
                            except Exception as error:  # asked again, whole, as the plain adapter would
                                log.warning("early transcription failed (%s); transcribing the whole speech", error)
                                heard = await self._recognize(event.frames)
                        else:
                            heard = await self._recognize(event.frames)
                        if heard.alternatives and heard.alternatives[0].text:
                            self._event_ch.send_nowait(stt.SpeechEvent(
                                type=stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=[heard.alternatives[0]],
                                speech_end_time=heard.speech_end_time or speech_end_time))
            finally:
                if early is not None:
                    early.cancel()
                    with contextlib.suppress(BaseException):
                        await early

        tasks = [asyncio.create_task(forward_input(), name="forward_input"),
                 asyncio.create_task(recognize(), name="recognize")]
        try:
            await asyncio.gather(*tasks)
        finally:
            await utils.aio.cancel_and_wait(*tasks)
            await vad_stream.aclose()
