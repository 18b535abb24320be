"""Warm transfer on a self-hosted LiveKit: the caller hears hold music while the assistant dials a colleague through
the outbound trunk, tells them who is calling and why, and puts the caller through only when they accept.

livekit-agents' WarmTransferTask briefs the colleague in a room of their own and then moves them into the caller's
room with MoveParticipant, which a self-hosted livekit-server answers with "not implemented". Here the colleague is
dialled into the caller's own room instead, and who hears whom is arranged with the server's UpdateSubscriptions:
the caller hears only the hold music, the colleague only the briefing, until the colleague says yes (or presses 1).
The server subscribes everyone to a track the moment it is published, so the colleague's voice is taken back from
the caller one API round trip after the agent hears of it (the agent logs how long; a person who just picked up
has not yet said "hello?"), and the colleague is taken off the caller's audio and the hold music as soon as they
join. The assistant's voice to the colleague is a track of its own that the caller is taken off before anything is
said on it.
Then caller and colleague hear each other, and the assistant falls silent; it stays in the room only to end both
legs when either side hangs up. A colleague who does not answer, says no (or presses 2), or says nothing clear
within ANSWER_WAIT_S is let go, and the caller is back with the assistant.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable

import numpy as np
from livekit import api, rtc
from livekit.agents import AgentSession, stt
from livekit.agents.utils.audio import audio_frames_from_file
from livekit.agents.voice.background_audio import AudioConfig, BackgroundAudioPlayer, BuiltinAudioClip

from .outbound import dial

log = logging.getLogger("agent")

COLLEAGUE_IDENTITY = "colleague"
BRIEFING_TRACK = "briefing"
RINGING_S = 20.0  # a colleague who has not picked up by then is not coming; the caller waits on hold meanwhile
SUBSCRIBED_WAIT_S = 5.0  # for the caller's subscription to the briefing track, before they are taken off it
GREETING_PAUSE_S = 1.0  # after the colleague picks up: room for their "hello?" before the briefing
ANSWER_WAIT_S = 20.0  # after the briefing, for the colleague's yes or no
ACCEPT_KEY, DECLINE_KEY = "1", "2"
ASK = "Press 1 or say yes to take the call; press 2 or say no if you can't."
CONNECTING = "Thank you, I'm putting the caller through now."
LET_GO = "No problem, I'll tell the caller. Goodbye."
HOLD_MUSIC_QUIET_RMS = 500.0  # int16 RMS under which the clip's fade-in and fade-out are cut (its music is louder)


class Handover(enum.Enum):
    accepted = "accepted"  # caller and colleague are talking; the assistant is silent
    declined = "declined"  # the colleague said no, or nothing clear in time, or hung up before answering
    no_answer = "no_answer"  # the colleague's phone was busy, not answered, or the dial failed
    caller_left = "caller_left"  # the caller hung up while on hold


async def hold_music_frames() -> list[rtc.AudioFrame]:
    """LiveKit's hold music without its 1.7 s fade-in and 3.9 s fade-out: looped, it never leaves a caller on hold
    in a silence long enough to wonder whether the line dropped. Decoding takes about 0.4 s."""
    frames = [frame async for frame in audio_frames_from_file(BuiltinAudioClip.HOLD_MUSIC.path())]
    level = [np.sqrt(np.mean(np.square(np.frombuffer(frame.data, np.int16), dtype=np.float64))) for frame in frames]
    smooth = np.convolve(level, np.ones(5) / 5, mode="same")  # over about 0.1 s: the decoder's last frame clicks
    loud = np.flatnonzero(smooth >= HOLD_MUSIC_QUIET_RMS)
    return frames[loud[0]:loud[-1] + 1] if loud.size else frames


async def looped(frames: list[rtc.AudioFrame]) -> AsyncIterator[rtc.AudioFrame]:
    while True:
        for frame in frames:
            yield frame


def briefing(business_name: str, caller_number: str | None, caller_words: list[str]) -> str:
    """Who is calling and why, in one or two sentences: the caller's own latest words, not a model's summary."""
    from .take_message import read_out

    calling_from = f", calling from {read_out(caller_number)}" if caller_number else ""
    said = " ".join(" ".join(caller_words).split()[-30:])
    why = f", who said: {said.rstrip('.?!')}." if said else "."
    return f"Hello, this is the assistant of {business_name}. I have a caller on the line{calling_from}{why} {ASK}"


class WarmTransfer:
    """One warm transfer of `caller` (in `room`) to `number`; `await run()` for how it ended. `answer(words)` reads
    the colleague's spoken reply: "yes", "no", or None when unclear (the turn policy's yes_or_no)."""

    def __init__(self, *, room: rtc.Room, lk: api.LiveKitAPI, session: AgentSession, caller: rtc.RemoteParticipant,
                 trunk_id: str, number: str, briefing: str, ringing_timeout: float = RINGING_S,
                 answer: Callable[[str], str | None]) -> None:
        self.room, self.lk, self.session, self.caller = room, lk, session, caller
        self.trunk_id, self.number, self.ringing_timeout = trunk_id, number, ringing_timeout
        self.briefing, self.answer = briefing, answer
        self.reply: asyncio.Future[str] = asyncio.get_event_loop().create_future()
        self.caller_gone: asyncio.Future[None] = asyncio.get_event_loop().create_future()
        self._hold = BackgroundAudioPlayer()
        self._hold_ready: asyncio.Future[tuple[None, list[rtc.AudioFrame]]] | None = None
        self._voice: rtc.AudioSource | None = None
        self._voice_sid = ""
        self._tasks: set[asyncio.Task] = set()
        self._asked = False  # a "yes" before the briefing (their "yes?" on picking up) is no answer to it

    def prepare_hold_music(self) -> None:
        """Publishes the hold music's track and decodes the music now, so that calling this while "please hold" is
        spoken lets the music follow it at once."""
        if self._hold_ready is None:
            self._hold_ready = asyncio.gather(self._hold.start(room=self.room), hold_music_frames())

    async def run(self) -> Handover:
        self.session.input.set_audio_enabled(False)  # the caller on hold is not a turn
        self.room.on("participant_disconnected", self._on_left)
        self.room.on("track_subscribed", self._on_track)
        self.room.on("track_published", self._on_published)
        self.room.on("sip_dtmf_received", self._on_key)
        accepted = False
        try:
            self.prepare_hold_music()
            assert self._hold_ready is not None
            _, music = await self._hold_ready
            self._hold.play(AudioConfig(looped(music), volume=0.8))
            await self._publish_voice()
            outcome = await self._until_caller_leaves(self._consult())
            accepted = outcome is Handover.accepted
            if accepted:  # from now on a colleague who hangs up ends the call (the caller's side ends it anyway)
                self.room.on("participant_disconnected", self._after_handover)
            return outcome
        finally:
            for event, handler in (("participant_disconnected", self._on_left), ("track_subscribed", self._on_track),
                                   ("track_published", self._on_published), ("sip_dtmf_received", self._on_key)):
                self.room.off(event, handler)
            for task in list(self._tasks):
                task.cancel()
            await self._hold.aclose()
            if self._voice_sid:
                with contextlib.suppress(Exception):
                    await self.room.local_participant.unpublish_track(self._voice_sid)
            if not accepted:
                self.session.input.set_audio_enabled(True)

    async def _until_caller_leaves(self, consult) -> Handover:
        task = asyncio.ensure_future(consult)
        done, _ = await asyncio.wait((task, self.caller_gone), return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        await self._let_colleague_go()
        return Handover.caller_left

    async def _consult(self) -> Handover:
        try:
            await dial(self.lk, trunk_id=self.trunk_id, number=self.number, room=self.room.name,
                       identity=COLLEAGUE_IDENTITY, ringing_timeout=self.ringing_timeout)
        except Exception as error:  # busy, no answer, declined, a trunk that fails
            log.info("warm transfer: the colleague was not reached (%s)", getattr(error, "message", error))
            return Handover.no_answer
        log.info("warm transfer: the colleague answered")
        await self._arrange()
        await asyncio.sleep(GREETING_PAUSE_S)
        self._asked = True
        await self._say(self.briefing)
        try:
            reply = await asyncio.wait_for(asyncio.shield(self.reply), ANSWER_WAIT_S)
        except TimeoutError:
            reply = "none"
        log.info("warm transfer: the colleague's answer is %s", reply)
        if reply != "yes":
            await self._let_colleague_go(LET_GO if reply in ("no", "none") else "")
            return Handover.declined
        await self._say(CONNECTING)
        await self._join()
        return Handover.accepted

    # --- who hears whom ---------------------------------------------------------------------------------------------
    async def _publish_voice(self) -> None:
        """The assistant's voice to the colleague: a track of its own, which the caller is taken off before anything
        is said on it. The server subscribes the caller only once the track's media flows, and an unsubscription
        sent before that is overtaken by it: so silence is sent until the caller (the only other one here yet) is
        subscribed, and only then are they taken off."""
        self._voice = rtc.AudioSource(self.session.tts.sample_rate, 1)
        track = rtc.LocalAudioTrack.create_audio_track(BRIEFING_TRACK, self._voice)
        publication = await self.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        self._voice_sid = publication.sid
        silence = asyncio.ensure_future(self._silence())
        try:
            await asyncio.wait_for(publication.wait_for_subscription(), SUBSCRIBED_WAIT_S)
        except TimeoutError:
            log.warning("warm transfer: the caller was not subscribed to the briefing track within %.0f s; taking "
                        "them off it anyway", SUBSCRIBED_WAIT_S)
        finally:
            silence.cancel()
            self._voice.clear_queue()
        await self._subscribe(self.caller.identity, [self._voice_sid], False)

    async def _silence(self) -> None:
        assert self._voice is not None
        rate = self._voice.sample_rate
        frame = rtc.AudioFrame(bytes(rate // 50 * 2), rate, 1, rate // 50)  # 20 ms
        while True:
            await self._voice.capture_frame(frame)

    async def _arrange(self, published_at: float | None = None) -> None:
        """The colleague hears neither the caller, nor the hold music, nor the assistant's voice to the caller; the
        caller does not hear the colleague. Run again for each track published later (the server subscribes
        everyone to a new track at once; this takes it back within a round trip)."""
        mine = [p.sid for p in self.room.local_participant.track_publications.values() if p.sid != self._voice_sid]
        callers = [p.sid for p in self.caller.track_publications.values()]
        await self._subscribe(COLLEAGUE_IDENTITY, mine + callers, False)
        if colleague := self.room.remote_participants.get(COLLEAGUE_IDENTITY):
            await self._subscribe(self.caller.identity, [p.sid for p in colleague.track_publications.values()], False)
        if published_at is not None:
            log.info("warm transfer: a new track taken back %.0f ms after it was published",
                     (time.monotonic() - published_at) * 1000)

    async def _join(self) -> None:
        """Caller and colleague hear each other; the hold music and the assistant's voice stop."""
        colleague = self.room.remote_participants.get(COLLEAGUE_IDENTITY)
        if colleague is None:
            return
        await self._subscribe(self.caller.identity, [p.sid for p in colleague.track_publications.values()], True)
        await self._subscribe(COLLEAGUE_IDENTITY, [p.sid for p in self.caller.track_publications.values()], True)
        self.session.output.set_audio_enabled(False)
        log.info("warm transfer: caller and colleague are connected")

    async def _subscribe(self, identity: str, track_sids: list[str], subscribe: bool) -> None:
        if track_sids:
            await self.lk.room.update_subscriptions(api.UpdateSubscriptionsRequest(
                room=self.room.name, identity=identity, track_sids=track_sids, subscribe=subscribe))

    async def _let_colleague_go(self, words: str = "") -> None:
        if COLLEAGUE_IDENTITY not in self.room.remote_participants:
            return
        if words:
            await self._say(words)
        with contextlib.suppress(Exception):  # already gone
            await self.lk.room.remove_participant(api.RoomParticipantIdentity(room=self.room.name,
                                                                              identity=COLLEAGUE_IDENTITY))

    # --- talking and listening to the colleague ----------------------------------------------------------------------
    async def _say(self, text: str) -> None:
        assert self._voice is not None
        async with self.session.tts.synthesize(text) as stream:
            async for event in stream:
                await self._voice.capture_frame(event.frame)
        await self._voice.wait_for_playout()

    async def _listen(self, track: rtc.RemoteAudioTrack) -> None:
        """The colleague's spoken yes or no (VAD-cut utterances through the session's STT)."""
        recognizer = stt.StreamAdapter(stt=self.session.stt, vad=self.session.vad)
        stream = recognizer.stream()
        audio = rtc.AudioStream.from_track(track=track, sample_rate=16000, num_channels=1)

        async def feed() -> None:
            async for event in audio:
                stream.push_frame(event.frame)

        feeding = asyncio.ensure_future(feed())
        try:
            async for event in stream:
                if event.type != stt.SpeechEventType.FINAL_TRANSCRIPT or not event.alternatives:
                    continue
                words = event.alternatives[0].text
                verdict = await asyncio.to_thread(self.answer, words)
                log.info("warm transfer: the colleague said something (%s)", verdict or "unclear")
                if verdict and self._asked and not self.reply.done():
                    self.reply.set_result(verdict)
        finally:
            feeding.cancel()
            await stream.aclose()
            await audio.aclose()

    # --- room events --------------------------------------------------------------------------------------------------
    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_published(self, _publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        if participant.identity in (COLLEAGUE_IDENTITY, self.caller.identity):
            self._spawn(self._arrange(time.monotonic()))

    def _on_track(self, track: rtc.Track, _publication, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == COLLEAGUE_IDENTITY and isinstance(track, rtc.RemoteAudioTrack):
            self._spawn(self._listen(track))

    def _on_key(self, event: rtc.SipDTMF) -> None:
        if (event.participant is None or event.participant.identity != COLLEAGUE_IDENTITY or not self._asked
                or self.reply.done()):
            return
        if event.digit in (ACCEPT_KEY, DECLINE_KEY):
            self.reply.set_result("yes" if event.digit == ACCEPT_KEY else "no")

    def _after_handover(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == COLLEAGUE_IDENTITY:
            log.info("warm transfer: the colleague hung up; ending the call")
            self.room.off("participant_disconnected", self._after_handover)
            self.session.shutdown()

    def _on_left(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.caller.identity and not self.caller_gone.done():
            self.caller_gone.set_result(None)
        elif participant.identity == COLLEAGUE_IDENTITY and not self.reply.done():
            self.reply.set_result("gone")
