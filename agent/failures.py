"""What a caller hears when the AI fails: a short apology in the offline voice, then a colleague or a clean goodbye.

- **Before the call.** `ProviderHealth` checks the AI provider (agent/providers.py's check_credentials) once per
  call, remembering the answer for a few seconds: an endpoint that comes back serves the next call, without a restart
  of the agent.
- **During the call.** `CallEnding` owns the end of every call. When the STT, LLM or TTS gives up on a request
  (livekit-agents' `error` event, not recoverable: its retries are spent), it asks the provider at once; if the
  provider is down, the session is closed then and there rather than after livekit's three more failures, each a
  turn of silence. When the session closes after a failure (ours, or livekit's CloseReason.ERROR), the caller hears
  the apology in the offline voice and is transferred to TRANSFER_NUMBER (a SIP REFER, as the transfer tool does) or
  hung up on. Any other close (the caller hung up, a goodbye) deletes the room, which ends the call and the job.
  (The session runs with delete_room_on_close off: livekit would otherwise delete the room, and hang up, before the
  apology.)
- **The offline voice** is Piper (GPL-3.0): it runs as a program of its own, `python -m local_openai.speak`, and never
  loads into this process. It works when the AI provider does not. Its fixed sentences are kept on disk
  (`OfflineVoice`), so they play at once on a machine whose CPU the calls have taken.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
import sys
import time
from pathlib import Path

from livekit import rtc
from livekit.agents import AgentSession, CloseReason, JobContext

from calls.models import EndReason
from stack.files import atomic_write

from .assistant import sip_caller, transfer_sip_caller
from .call_record import CallRecord
from .providers import ProviderChoice, check_credentials

log = logging.getLogger("agent")

APOLOGY = "Sorry, our assistant is not available right now. Please call again later. Goodbye."
APOLOGY_THEN_TRANSFER = "Sorry, our assistant is not available right now. Let me put you through to a colleague."


class ProviderHealth:
    """check_credentials(), run at most once per `ttl` seconds (per worker process); `forget()` makes the next
    question ask the provider again."""

    def __init__(self, providers: ProviderChoice, ttl: float = 5.0, timeout: float = 3.0, check=check_credentials,
                 clock=time.monotonic) -> None:
        self.providers, self.ttl, self.timeout, self.check, self.clock = providers, ttl, timeout, check, clock
        self._answer: str | None = None
        self._asked_at: float | None = None

    async def problem(self) -> str | None:
        """None when the provider answers; else one line saying what is wrong."""
        if self._asked_at is None or self.clock() - self._asked_at >= self.ttl:
            self._answer = await asyncio.to_thread(self.check, self.providers, self.timeout)
            self._asked_at = self.clock()
        return self._answer

    def forget(self) -> None:
        self._asked_at = None


class OfflineVoice:
    """Sentences in the offline voice, as 16-bit mono PCM at `rate` from `python -m local_openai.speak`, kept on
    disk: a fixed sentence ("all our lines are busy", the apology) is synthesized once per machine, in a thread of the
    worker's main process once it has registered (agent/worker.py's build_server), and plays at once when needed,
    even with the CPU taken by calls. Any other sentence is synthesized when asked."""

    def __init__(self, cache_dir: Path, voice: str, rate: int = 24000) -> None:
        self.cache_dir, self.voice, self.rate = cache_dir, voice, rate

    def _path(self, text: str) -> Path:
        key = hashlib.sha256(f"{self.voice}|{self.rate}|{text}".encode()).hexdigest()[:24]
        return self.cache_dir / f"{key}.pcm"

    def _command(self, text: str) -> list[str]:
        return [sys.executable, "-m", "local_openai.speak", "--sample-rate", str(self.rate), text]

    def prepare(self, texts: list[str]) -> None:
        """Synthesizes the sentences not on disk yet (blocking: run it in a thread of its own)."""
        for text in texts:
            if not self._path(text).is_file():
                done = subprocess.run(self._command(text), stdout=subprocess.PIPE, check=False)
                if done.returncode == 0 and done.stdout:
                    atomic_write(self._path(text), done.stdout)

    async def pcm(self, text: str) -> bytes:
        try:
            return self._path(text).read_bytes()
        except FileNotFoundError:
            pass
        speaker = await asyncio.create_subprocess_exec(*self._command(text), stdout=asyncio.subprocess.PIPE)
        try:  # its stderr is ours: a failure shows in the agent's log
            pcm, _ = await speaker.communicate()
        finally:
            if speaker.returncode is None:
                speaker.kill()
                await speaker.wait()
        if speaker.returncode:
            log.error("the offline voice failed (exit %d); its error is above", speaker.returncode)
        return pcm[:len(pcm) // 2 * 2]

    async def say(self, room: rtc.Room, text: str) -> None:
        """Says `text` into the room; returns once it has been played out."""
        pcm = await self.pcm(text)
        source = rtc.AudioSource(self.rate, 1)
        track = rtc.LocalAudioTrack.create_audio_track("offline-voice", source)
        await room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        frame_bytes = self.rate // 50 * 2  # 20 ms of 16-bit samples
        for start in range(0, len(pcm), frame_bytes):
            chunk = pcm[start:start + frame_bytes]
            await source.capture_frame(rtc.AudioFrame(chunk, self.rate, 1, len(chunk) // 2))
        await source.wait_for_playout()


async def hang_up(ctx: JobContext, reason: str) -> None:
    await ctx.delete_room()  # before shutdown: a request still in flight is dropped with the process
    ctx.shutdown(reason)


async def apologize_and_hang_up(ctx: JobContext, voice: OfflineVoice, message: str, reason: str, record: CallRecord,
                                end_reason: EndReason) -> None:
    """Says `message` with the offline voice, then ends the call, so the caller hears no silence; the call's record
    gets the message and `end_reason`."""
    record.said(message)
    record.end(end_reason)
    try:
        await voice.say(ctx.room, message)
    finally:
        await hang_up(ctx, reason)


async def apologize_and_hand_over(ctx: JobContext, voice: OfflineVoice, transfer_number: str, reason: str,
                                  record: CallRecord, problem: str) -> None:
    """The AI failed (`problem`): the apology in the offline voice, then the caller goes to `transfer_number` (when
    there is one and the caller is on the phone) or the call ends. The call's record keeps the failure as its end."""
    record.end(EndReason.error, problem)
    try:
        if (caller := sip_caller(ctx.room)) is None and not ctx.room.remote_participants:
            return  # the caller has gone: nobody to apologize to
        transferring = bool(transfer_number) and caller is not None  # a web user cannot be transferred
        apology = APOLOGY_THEN_TRANSFER if transferring else APOLOGY
        record.said(apology)
        await voice.say(ctx.room, apology)
        if transferring:
            try:
                await transfer_sip_caller(ctx, caller, transfer_number)
            except Exception as error:  # the carrier refused the REFER, say: the call just ends
                log.warning("transfer after a failure did not go through: %s", error)
    finally:
        await hang_up(ctx, reason)


class CallEnding:
    """Watches one call's session (see the module's docstring); `watch()` before session.start()."""

    def __init__(self, ctx: JobContext, session: AgentSession, health: ProviderHealth, voice: OfflineVoice,
                 transfer_number: str, record: CallRecord) -> None:
        self.ctx, self.session, self.health, self.voice = ctx, session, health, voice
        self.transfer_number, self.record = transfer_number, record
        self.failure: str | None = None
        self._tasks: set[asyncio.Task] = set()

    def watch(self) -> None:
        self.session.on("error", self._on_error)
        self.session.on("close", self._on_close)

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_error(self, event) -> None:
        error = event.error
        if error.recoverable or self.failure:
            return
        self._spawn(self._check_provider(error))

    async def _check_provider(self, error) -> None:
        self.health.forget()  # the cached "fine" is what just failed
        problem = await self.health.problem()
        if problem is None:
            log.warning("%s failed (%s), but the AI provider answers: the call goes on", error.type, error.error)
            return
        if self.failure:
            return
        log.error("mid-call: %s failed and %s", error.type, problem)
        self.failure = problem
        self.record.note_end(EndReason.error, problem)  # the record's own close handler would say "assistant ended"
        self.session.shutdown(drain=False)  # the caller waits in silence until the apology: no more tries

    def _on_close(self, event) -> None:
        if event.reason == CloseReason.ERROR and not self.failure:
            self.failure = f"the session gave up after repeated {getattr(event.error, 'type', 'error')}s"
        if self.failure:
            log.error("the call failed (%s): apologizing%s", self.failure,
                      ", then transferring" if self.transfer_number else ", then hanging up")
            self._spawn(apologize_and_hand_over(self.ctx, self.voice, self.transfer_number,
                                                "AI provider failed mid-call", self.record, self.failure))
        else:  # the caller hung up, or the assistant said goodbye: end the call and the job
            self._spawn(hang_up(self.ctx, f"session closed ({event.reason.value})"))
