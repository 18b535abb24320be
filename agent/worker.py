"""The agent worker: registers with LiveKit under AGENT_NAME and runs one phone call per job.

Pipeline per call: caller audio -> Silero VAD -> STT (started at the first short silence: agent/early_transcription.py)
-> end-of-turn check (agent/turn_end.py) -> LLM (+tools) -> TTS (replies said word for word played from disk:
agent/ready_speech.py) -> caller.
build_server(settings) makes the worker; nothing here reads the settings at import.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import importlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable

from livekit import api, rtc
from livekit.agents import NOT_GIVEN, AgentServer, AgentSession, JobContext, JobProcess, JobRequest, room_io, tts
from livekit.agents.voice.amd import AMDCategory
from livekit.plugins import silero

from calls.aftercall import QUIET_S, AfterCall
from calls.models import EndReason
from calls.recordings import prune_recordings
from sip.provisioning import livekit_api_of, participants_of
from stack.settings import LOOPBACK, Settings

from .admission import Admission, Verdict
from .assistant import SAID_BY_TOOLS, PhoneAssistant
from .business import BusinessProfile
from .call_limits import ALREADY_CALLING, SILENT_GOODBYE, STILL_THERE, CallLimits, max_duration_of, seconds_since
from .call_record import CallRecord, open_call_store
from .early_transcription import EarlyTranscription
from .failures import (
    APOLOGY,
    APOLOGY_THEN_TRANSFER,
    CallEnding,
    OfflineVoice,
    ProviderHealth,
    apologize_and_hand_over,
    apologize_and_hang_up,
    hang_up,
)
from .first_clause import first_clause_tts
from .keypad import Keypad
from .knowledge import business_entries
from .orphans import on_first_registration
from .outbound import IDENTITY as OUTBOUND_IDENTITY
from .outbound import LEAVE_A_MESSAGE, OutboundCall, detect_and_dial, dial_outcome, opening_line, voicemail_message
from .providers import ProviderChoice, build_plugins, choose_providers, session_connect_options
from .ready_speech import ReadySpeech, ReadyTTS
from .take_message import ASK_NAME, ASK_NUMBER, ASK_TEXT, RETRY_TEXT
from .turn_end import TranscriptTurnDetector, turn_detector
from .turn_policy import TurnPolicy, answering_profile, fixed_replies

log = logging.getLogger("agent")
BUSY = "Sorry, all our lines are busy right now. Please call again in a few minutes. Goodbye."
BUSY_ATTRIBUTE = "phone_assistant.lines_busy"  # on the agent's participant, set when the call was admitted
# On the agent's participant when its caller already has AGENT_MAX_CALLS_PER_CALLER calls under way.
REPEAT_CALLER_ATTRIBUTE = "phone_assistant.caller_has_calls"
VERDICT_ATTRIBUTES = {Verdict.BUSY: {BUSY_ATTRIBUTE: "true"}, Verdict.REPEAT_CALLER: {REPEAT_CALLER_ATTRIBUTE: "true"}}
# RECORD_CALLS: livekit-agents' session recording of the audio only (no traces, logs or transcript to LiveKit Cloud's
# observability, which is where the rest would go); the transcript is in the call store.
AUDIO_ONLY = {"audio": True, "traces": False, "logs": False, "transcript": False}
# How long a job waits for its caller to be in the room. A SIP caller is there before the agent is dispatched, and a web
# user's join is what starts the job; one who is gone by then (a call cancelled while it rang) never comes, and the
# job would hold one of the AGENT_MAX_CALLS lines until the room's empty timeout (5 minutes).
CALLER_WAIT_S = 20


class Lines:
    """The worker's admission (agent/admission.py) on livekit-agents' AgentServer: on_request and load_fnc, both in
    the worker's main process, the one that knows the running jobs. A job still closing counts for the load, not
    for admission once its call's room is gone. CPU load, livekit's default measure, says "full" whenever the local
    models are busy on a small machine."""

    def __init__(self, server: AgentServer, admission: Admission, settings: Settings) -> None:
        self.server, self.admission, self.settings = server, admission, settings
        self.on_accept: Callable[[str], None] | None = None  # told each accepted call's room (after-call work)

    def running(self) -> dict[str, str]:
        return {job.job.id: job.job.room.name for job in self.server.active_jobs}

    def running_rooms(self) -> set[str]:
        return set(self.running().values())

    def load(self) -> float:
        running = self.running()
        self.keep_warm(running)
        return self.admission.load(running)

    def keep_warm(self, running: dict[str, str]) -> None:
        """Warm processes for the free lines only. livekit-agents does the same from its load threshold, which this
        worker has not (math.inf, below); without it a burst that takes the warm processes starts as many new ones,
        whose start-up (models, greeting, prompt cache) takes the CPU and the local endpoint from the calls."""
        pool = getattr(self.server, "_proc_pool", None)
        if pool is not None:
            pool.set_target_idle_processes(self.admission.free_lines(running))

    async def admit(self, request: JobRequest) -> None:
        # A job whose call has ended (its room deleted) takes seconds to close its process, longer on a busy CPU:
        # it holds no line. Asked before the running jobs are read, so that a job starting meanwhile still counts.
        ended = await self.ended_calls()
        running = {job: room for job, room in self.running().items() if room not in ended}
        verdict = self.admission.admit(request.id, request.room.name, running)
        self.keep_warm(running)  # now, before the pool replaces the process this call is about to take
        if verdict is Verdict.TURN_AWAY:  # not counted: Admission never put it on a line
            log.warning("all %d lines in use: turning a call away (486 Busy Here)", self.admission.lines)
            await self.turn_away(request)
            return
        if self.on_accept:
            self.on_accept(request.room.name)
        try:
            await request.accept(attributes=VERDICT_ATTRIBUTES.get(verdict))
        finally:  # the job runs now (active_jobs has it), or it never will
            self.admission.settled(request.id)

    async def ended_calls(self) -> set[str]:
        """The rooms of running jobs whose call is over: the room is gone, or it is a phone call's room and the
        caller has left it (the agent deletes the room a second or more later; measured, a caller dialling right
        after the previous one hung up heard "busy" in 10 of 40 calls in a row). Empty when the server cannot say."""
        rooms = self.running_rooms()
        if not rooms:
            return set()
        try:
            async with livekit_api_of(self.settings) as lk:
                live = (await lk.room.list_rooms(api.ListRoomsRequest(names=sorted(rooms)))).rooms
                ended = rooms - {room.name for room in live}
                # livekit-sip puts the caller in the room as it creates it, so a phone room without one is over.
                phone = [room for room in live if room.name.startswith(self.settings.sip_room_prefix)]
                for room, people in zip(phone, await participants_of(lk, phone)):
                    if not any(p.kind == api.ParticipantInfo.Kind.SIP for p in people):
                        ended.add(room.name)
        except Exception as error:  # then every running job counts
            log.warning("could not list the rooms of running calls: %s", error)
            return set()
        return ended

    async def turn_away(self, request: JobRequest) -> None:
        """Deletes the call's room: livekit-sip then answers the still ringing INVITE 486 Busy Here at once."""
        try:
            async with livekit_api_of(self.settings) as lk:
                await lk.room.delete_room(api.DeleteRoomRequest(room=request.room.name))
        except Exception as error:  # the caller then rings until SIP_RINGING_TIMEOUT: say why
            log.error("could not turn a call away (%s): it rings until SIP_RINGING_TIMEOUT", error)
        await request.reject()


def build_server(settings: Settings) -> AgentServer:
    """The worker, registered as AGENT_NAME with the LiveKit server the settings name."""
    server = AgentServer(
        ws_url=settings.livekit_url, api_key=settings.api_key, api_secret=settings.api_secret,
        host=LOOPBACK,
        port=settings.agent_http_port,
        # Admission (Lines) answers every call, each with a line or a "busy": a worker that said "full" would leave
        # callers ringing, as livekit would dispatch them to no one.
        load_threshold=math.inf,
        initialize_process_timeout=60.0,  # prewarm loads models and synthesizes the greeting on a slow CPU
    )
    if store := open_call_store(settings, migrate=True):  # once here, so no call's process waits on a migration
        store.close()
    # What a caller hears when there is no line or no AI, synthesized once per machine (kept on disk), beside the
    # worker once it has registered (its first processes are warm by then) rather than in each process's prewarm,
    # which has a time limit and a busy CPU. Until it is ready, a sentence is synthesized when needed.
    sentences = [BUSY, ALREADY_CALLING, APOLOGY]
    if BusinessProfile.load(settings).transfer_number:
        sentences.append(APOLOGY_THEN_TRANSFER)
    server.once("worker_registered", lambda *_: threading.Thread(
        target=offline_voice(settings).prepare, args=(sentences,), daemon=True, name="offline-voice").start())
    # The same for the replies said word for word, in the call's own voice (agent/ready_speech.py). Its TTS plugin
    # is imported now: livekit-agents registers a plugin on the main thread only, and an import in the running
    # worker would block its event loop for a second.
    importlib.import_module("livekit.plugins.openai")
    server.once("worker_registered", lambda *_: prepare_ready_speech(settings))
    lines = Lines(server, Admission(settings.agent_max_calls, settings.agent_max_calls_per_caller,
                                    settings.sip_room_prefix, settings.playground_max_sessions), settings)
    server.load_fnc = lines.load
    server.setup_fnc = prewarm
    server.rtc_session(phone_call, agent_name=settings.agent_name, on_request=lines.admit)
    server.on("worker_started", lambda: start_after_call(settings, lines))
    server.once("worker_registered", on_first_registration(settings))  # calls that rang while no worker was up
    return server


def start_after_call(settings: Settings, lines: Lines) -> AfterCall | None:
    """Each call's summary and end-of-call webhook, after it, in this process (the worker's main one, which outlives
    the calls' job processes: calls/aftercall.py says why)."""
    if not settings.call_summaries and not settings.call_webhook_url:
        return None
    store = open_call_store(settings)
    if store is None:
        return None
    after_call = AfterCall(store, settings, running_rooms=lines.running_rooms,
                           quiet_s=QUIET_S if settings.uses_local_ai else 0.0)
    lines.on_accept = after_call.expect
    after_call.start()
    return after_call


def offline_voice(settings: Settings) -> OfflineVoice:
    return OfflineVoice(settings.run_dir / "offline-voice", settings.local_tts_voice)


def ready_speech(settings: Settings, providers: ProviderChoice, speech: tts.TTS) -> ReadySpeech:
    """Where the audio of `speech`'s voice is kept: one folder per machine, a file per request and voice."""
    voice = "|".join((providers.name, providers.base_url or "", providers.tts_model, providers.tts_voice,
                      settings.local_tts_voice if settings.uses_local_ai else "", str(speech.sample_rate)))
    return ReadySpeech(settings.models_dir / "ready-speech", voice)


def said_word_for_word(settings: Settings) -> list[str]:
    """What a caller may hear that is written beforehand: the turn policy's fixed replies, the knowledge base's
    answers and the week's hours, the tools' and the message-taking's sentences."""
    profile = answering_profile(settings)
    answers = [entry.answer for entry in business_entries(config_file=settings.business_config or "",
                                                          facts=settings.business_facts,
                                                          business_name=profile.business_name)]
    return [*fixed_replies(profile, answers, today=datetime.date.today()), profile.farewell_text, *SAID_BY_TOOLS,
            ASK_NAME, ASK_NUMBER, ASK_TEXT, RETRY_TEXT, STILL_THERE, SILENT_GOODBYE]


def prepare_ready_speech(settings: Settings) -> None:
    """Synthesizes what is not ready yet, in a thread of its own."""
    providers = choose_providers(settings)
    _, _, speech = build_plugins(providers)
    ready, replies = ready_speech(settings, providers, speech), said_word_for_word(settings)

    async def prepare() -> None:
        try:
            await ready.prepare(replies, speech)
        except Exception as error:  # only an optimisation: each reply is synthesized live
            log.warning("could not synthesize the replies said word for word ahead: %s", error)
        finally:
            await speech.aclose()
    threading.Thread(target=asyncio.run, args=(prepare(),), daemon=True, name="ready-speech").start()


def prewarm(proc: JobProcess) -> None:
    """Per worker process, before any call: everything slow that does not depend on the caller."""
    settings = proc.userdata["settings"] = Settings.load()
    providers = choose_providers(settings)
    log.info(providers.describe())
    # 0.35 s of silence ends a VAD segment (default 0.55 s); the turn detector keeps a mid-sentence pause open.
    proc.userdata["vad"] = silero.VAD.load(min_silence_duration=0.35)
    proc.userdata["providers"] = providers
    # Asked again per call (cached a few seconds): a provider that is down now may be back for the next caller.
    health = proc.userdata["provider_health"] = ProviderHealth(providers)
    proc.userdata["call_store"] = store = open_call_store(settings)  # build_server() migrated it
    if store and settings.record_calls:
        prune_recordings(store, settings.recordings_dir, settings.record_retention_days)
    problem = asyncio.run(health.problem())
    if problem:
        log.error("%s (each call is checked again)", problem)
    policy = TurnPolicy.load(settings)  # the intent classifier and the knowledge base, trained and embedded once
    log.info(policy.describe())
    profile = policy.profile
    proc.userdata["offline_voice"] = offline_voice(settings)  # its sentences: build_server()
    build_plugins(providers)  # imports the plugin modules now (over a second), not on the first call
    if problem:  # the greeting and the prompt cache need the provider: each call makes its greeting live
        return
    # The greeting never changes: synthesize it once, so a call hears it without waiting for TTS.
    try:
        proc.userdata["greeting"] = asyncio.run(synthesize(profile.greeting_text, providers))
    except Exception as error:  # then the greeting is synthesized live, per call
        log.warning("could not pre-synthesize the greeting: %s", error)
    # Prime a self-hosted LLM server's prompt cache with our instructions and tools, in the background.
    # (OpenAI caches prompts itself; a warm-up there would only cost tokens.)
    if providers.name != "openai":
        threading.Thread(target=asyncio.run, args=(warm_prompt_cache(providers, policy),), daemon=True).start()


async def synthesize(text: str, providers) -> list[rtc.AudioFrame]:
    _, _, speech = build_plugins(providers)
    try:
        async with speech.synthesize(text) as stream:
            return [event.frame async for event in stream]
    finally:
        await speech.aclose()


async def warm_prompt_cache(providers, policy: TurnPolicy) -> None:
    """One throwaway text turn through the real agent, so the server has evaluated its system prompt and tools
    before the first caller speaks (a cold prefill costs seconds on a CPU)."""
    _, llm, _ = build_plugins(providers)
    try:
        started = time.monotonic()
        async with llm, AgentSession(llm=llm, conn_options=session_connect_options()) as session:
            await session.start(PhoneAssistant(policy.profile, policy))
            await session.run(user_input="Hello")
        log.info("LLM prompt cache warmed in %.1f s", time.monotonic() - started)
    except Exception as error:  # only an optimisation: the call works without it
        log.warning("could not warm the LLM prompt cache: %s", error)


async def phone_call(ctx: JobContext) -> None:
    settings = ctx.proc.userdata["settings"]
    policy = TurnPolicy.load(settings)
    profile = policy.profile
    providers = ctx.proc.userdata["providers"]
    voice = ctx.proc.userdata["offline_voice"]
    await ctx.connect()
    if outbound := OutboundCall.from_metadata(ctx.job.metadata):
        await call_out(ctx, outbound, policy)
        return
    try:
        participant = await asyncio.wait_for(ctx.wait_for_participant(), CALLER_WAIT_S)
    except TimeoutError:
        log.info("no caller in the room within %d s (the call was cancelled while it rang): ending job %s",
                 CALLER_WAIT_S, ctx.job.id)
        await hang_up(ctx, "the caller left before the agent joined")
        return
    is_phone = participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP
    caller_number = participant.attributes.get("sip.phoneNumber") if is_phone else None
    # Who called is personal data: the number and the room named after it only at debug level.
    log.info("%s call started (job %s)", "phone" if is_phone else "web", ctx.job.id)
    log.debug("call from %s in room %s", caller_number or participant.identity, ctx.room.name)
    # Its record in the call store, written turn by turn from a thread of its own; the last writes land before the
    # job's process ends.
    record = call_record(ctx, settings)
    started_ago = seconds_since(ctx.room.creation_time)
    record.begin(ctx, participant, is_phone=is_phone, settings=settings, providers=providers,
                 started_ago=started_ago)

    if ctx.room.local_participant.attributes.get(BUSY_ATTRIBUTE):
        log.warning("all %d lines busy: telling the caller to call back (job %s)", settings.agent_max_calls,
                    ctx.job.id)
        await apologize_and_hang_up(ctx, voice, BUSY, "all lines busy", record, EndReason.busy)
        return
    if ctx.room.local_participant.attributes.get(REPEAT_CALLER_ATTRIBUTE):
        log.warning("the caller already has %d calls under way: turning this one away (job %s)",
                    settings.agent_max_calls_per_caller, ctx.job.id)
        log.debug("%s already has %d calls under way", caller_number, settings.agent_max_calls_per_caller)
        await apologize_and_hang_up(ctx, voice, ALREADY_CALLING, "too many calls from one number", record,
                                    EndReason.rejected_repeat_caller)
        return
    if problem := await ctx.proc.userdata["provider_health"].problem():
        log.error("%s", problem)
        await apologize_and_hand_over(ctx, voice, profile.transfer_number, "AI provider unavailable", record, problem)
        return

    session = await converse(ctx, policy, record, caller_number, keypad=is_phone)
    # A fixed greeting needs no LLM round trip, and its audio is ready, so the caller hears us at once.
    greeting = ctx.proc.userdata.get("greeting")
    session.say(profile.greeting_text, audio=frames_of(greeting) if greeting else NOT_GIVEN, allow_interruptions=False)
    # A silent caller is asked, then let go; a call nearing the trunk's maximum duration is ended with a goodbye.
    CallLimits(session, silence=settings.agent_silence_timeout or None,
               max_duration=max_duration_of(participant.attributes) if is_phone else None,
               started_ago=started_ago, note_end=record.note_end).start()


def call_record(ctx: JobContext, settings: Settings) -> CallRecord:
    record = CallRecord(ctx.proc.userdata["call_store"],
                        recordings_dir=settings.recordings_dir if settings.record_calls else None)
    ctx.add_shutdown_callback(record.aclose)
    return record


async def converse(ctx: JobContext, policy: TurnPolicy, record: CallRecord, caller_number: str | None, *,
                   keypad: bool, opening: str = "", purpose: str = "",
                   participant_identity: str | None = None) -> AgentSession:
    """The conversation: the session (VAD, STT, end of turn, the assistant, TTS) started in the call's room."""
    settings, providers = ctx.proc.userdata["settings"], ctx.proc.userdata["providers"]
    profile = policy.profile
    stt, llm, speech = build_plugins(providers, profile.agent_language, stt_prompt=policy.transcription_prompt())
    detector = turn_detector(providers)
    vad = ctx.proc.userdata["vad"]
    session = AgentSession(
        vad=vad, stt=EarlyTranscription(stt=stt, vad=vad), llm=llm,
        tts=first_clause_tts(ReadyTTS(speech, ready_speech(settings, providers, speech))),
        conn_options=session_connect_options(),
        user_away_timeout=settings.agent_silence_timeout or None,
        turn_handling={
            "turn_detection": detector,
            "endpointing": {"min_delay": 0.25, "max_delay": 1.5},
            "interruption": {"mode": "vad"},
            "preemptive_generation": {"enabled": True},
        },
    )
    session.on("conversation_item_added", log_turn_metrics)
    if isinstance(detector, TranscriptTurnDetector):
        detector.prime_after_replies(session)
        ctx.add_shutdown_callback(detector.aclose)
    # How the call ends, the room deleted: the caller hung up, a goodbye, or an apology after the AI failed.
    CallEnding(ctx, session, ctx.proc.userdata["provider_health"], ctx.proc.userdata["offline_voice"],
               profile.transfer_number, record).watch()
    assistant = PhoneAssistant(profile, policy, caller_number, on_intent=record.intent_decided,
                               note_end=record.note_end, on_message=record.message_taken, opening=opening,
                               purpose=purpose)
    await session.start(agent=assistant, room=ctx.room, record=AUDIO_ONLY if settings.record_calls else NOT_GIVEN,
                        room_options=room_io.RoomOptions(
                            participant_identity=participant_identity or NOT_GIVEN,
                            text_input=room_io.TextInputOptions(
                                text_input_cb=capped_chat(settings.agent_max_chat_chars))))
    record.attach(session, ctx, answered=not opening)  # a call we place is answered once the callee picks up
    if keypad:  # keypad shortcuts, and digits keyed where the assistant asks for a number
        Keypad(session, assistant.shortcuts, assistant.press).listen(ctx.room)
    return session


async def call_out(ctx: JobContext, call: OutboundCall, policy: TurnPolicy) -> None:
    """An outbound call (agent/outbound.py): dialled with answering-machine detection; a person gets a
    conversation, a voicemail greeting a short message after it, and every other end an outcome on record."""
    settings, providers = ctx.proc.userdata["settings"], ctx.proc.userdata["providers"]
    profile = policy.profile
    log.info("outbound call started (job %s)", ctx.job.id)
    record = call_record(ctx, settings)
    record.begin_outbound(ctx, call.number, settings=settings, providers=providers)
    if ctx.room.local_participant.attributes.get(BUSY_ATTRIBUTE):
        log.warning("all %d lines in use: the outbound call is not placed", settings.agent_max_calls)
        record.end(EndReason.no_free_line)
        await hang_up(ctx, "no free line for an outbound call")
        return
    if problem := await ctx.proc.userdata["provider_health"].problem():
        log.error("%s: the outbound call is not placed", problem)
        record.end(EndReason.error, problem)
        await hang_up(ctx, "AI provider unavailable")
        return
    session = await converse(ctx, policy, record, call.number, keypad=True,
                             opening=opening_line(profile, call.purpose), purpose=call.purpose,
                             participant_identity=OUTBOUND_IDENTITY)
    try:
        verdict = await detect_and_dial(ctx, session, call, on_answer=record.answered)
    except Exception as error:  # busy, no answer, declined, a trunk that fails
        reason, detail = dial_outcome(error)
        log.info("the outbound call did not connect: %s (%s)", reason.value, detail)
        record.end(reason, detail)
        await hang_up(ctx, f"outbound call: {reason.value}")
        return
    if verdict.category in LEAVE_A_MESSAGE or verdict.category == AMDCategory.MACHINE_UNAVAILABLE:
        leave = verdict.category in LEAVE_A_MESSAGE
        record.note_end(EndReason.voicemail_left if leave else EndReason.voicemail_unavailable,
                        verdict.transcript[:500] or None)
        if leave:
            callback = settings.sip_outbound_number or settings.sip_numbers[0]
            await session.say(voicemail_message(profile, call.purpose, callback),
                              allow_interruptions=False).wait_for_playout()
        # Nothing after the message (no reply to the greeting's words); CallEnding then hangs up.
        session.shutdown(drain=False)
        return
    # A person, or AMD could not tell: talking to a machine is the smaller mistake than hanging up on a person.
    session.current_agent.screening = False
    # The opening, whole: the callee's "hello" can still be in transcription when AMD has decided (a busy machine),
    # and its turn, ending now, would cut the opening off after a word. livekit-agents drops a turn that ends
    # during speech that allows no interruption, and the opening answers that hello anyway.
    session.generate_reply(allow_interruptions=False)
    CallLimits(session, silence=settings.agent_silence_timeout or None, max_duration=None, started_ago=0.0,
               note_end=record.note_end).start()


def capped_chat(max_chars: int):
    """livekit-agents' handling of a typed chat message (the playground's), on at most `max_chars` characters of
    it: a long paste never reaches the LLM whole."""
    handle = room_io.TextInputOptions().text_input_cb  # the library's default

    def on_text(session: AgentSession, event: room_io.TextInputEvent):
        if len(event.text) > max_chars:
            log.info("a chat message of %d characters was cut to %d (AGENT_MAX_CHAT_CHARS)", len(event.text),
                     max_chars)
            event = dataclasses.replace(event, text=event.text[:max_chars])
        return handle(session, event)
    return on_text


async def frames_of(frames: list[rtc.AudioFrame]):
    for frame in frames:
        yield frame


def log_turn_metrics(event) -> None:
    """One JSON line per message with livekit-agents' own latency figures (the benchmark reads these)."""
    item = event.item
    metrics = getattr(item, "metrics", None)
    if metrics:
        log.info("turn metrics %s", json.dumps({"role": item.role, **{k: v for k, v in dict(metrics).items()
                                                                     if isinstance(v, (int, float))}}))
