"""The agent worker: registers with LiveKit under AGENT_NAME and runs one phone call per job.

Pipeline per call: caller audio -> Silero VAD + offline turn detector -> STT -> LLM (+tools) -> TTS -> caller.
"""

from __future__ import annotations

import json
import logging
import os

from livekit import rtc
from livekit.agents import AgentServer, AgentSession, JobContext, JobProcess, inference
from livekit.plugins import silero

from .assistant import PhoneAssistant
from .business import BusinessProfile
from .providers import build_plugins, check_credentials, choose_providers

log = logging.getLogger("agent")
AGENT_NAME = os.environ.get("AGENT_NAME") or "phone-assistant"
# The worker is full when this many calls run. (CPU load, livekit's default measure, says "full" whenever
# the local models are busy on a small machine, and then no call would be dispatched.)
MAX_CALLS = int(os.environ.get("AGENT_MAX_CALLS") or 4)
APOLOGY = "Sorry, our assistant is not available right now. Please call again later. Goodbye."


def active_call_load(server: AgentServer) -> float:
    return min(len(server.active_jobs) / MAX_CALLS, 1.0)


server = AgentServer(
    host="127.0.0.1",
    port=int(os.environ.get("AGENT_HTTP_PORT") or 8081),
    load_fnc=active_call_load,
    load_threshold=0.99,
)


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = silero.VAD.load()
    proc.userdata["providers"] = choose_providers()
    log.info(proc.userdata["providers"].describe())


server.setup_fnc = prewarm


@server.rtc_session(agent_name=AGENT_NAME)
async def phone_call(ctx: JobContext) -> None:
    profile = BusinessProfile.load()
    providers = ctx.proc.userdata["providers"]
    await ctx.connect()
    participant = await ctx.wait_for_participant()
    is_phone = participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP
    caller_number = participant.attributes.get("sip.phoneNumber") if is_phone else None
    log.info("call from %s (%s) in room %s", caller_number or participant.identity,
             "phone" if is_phone else "web", ctx.room.name)

    if "provider_problem" not in ctx.proc.userdata:  # checked once per process
        ctx.proc.userdata["provider_problem"] = await check_credentials(providers)
    if problem := ctx.proc.userdata["provider_problem"]:
        log.error("%s", problem)
        await apologize_and_hang_up(ctx)
        return

    stt, llm, tts = build_plugins(providers, profile.agent_language)
    session = AgentSession(
        vad=ctx.proc.userdata["vad"], stt=stt, llm=llm, tts=tts,
        turn_handling={
            # The bundled offline detector, in every mode (dev/console would otherwise try LiveKit Cloud first).
            "turn_detection": inference.TurnDetector(version="v1-mini"),
            "endpointing": {"min_delay": 0.3, "max_delay": 2.0},
            "interruption": {"mode": "vad"},
            "preemptive_generation": {"enabled": True},
        },
    )
    session.on("conversation_item_added", log_turn_metrics)
    await session.start(agent=PhoneAssistant(profile, caller_number), room=ctx.room)
    # A fixed greeting needs no LLM round trip, so the caller hears us as soon as the call connects.
    session.say(profile.greeting_text, allow_interruptions=False)


def log_turn_metrics(event) -> None:
    """One JSON line per message with livekit-agents' own latency figures (the benchmark reads these)."""
    item = event.item
    metrics = getattr(item, "metrics", None)
    if metrics:
        log.info("turn metrics %s", json.dumps({"role": item.role, **{k: v for k, v in dict(metrics).items()
                                                                     if isinstance(v, (int, float))}}))


async def apologize_and_hang_up(ctx: JobContext) -> None:
    """The AI provider is unusable: say so with the offline voice, then end the call, so the caller hears no silence."""
    from local_openai.tts import TextToSpeech

    tts = TextToSpeech()
    source = rtc.AudioSource(tts.sample_rate, 1)
    track = rtc.LocalAudioTrack.create_audio_track("apology", source)
    await ctx.room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
    for chunk in tts.synthesize(APOLOGY):
        for start in range(0, chunk.size, tts.sample_rate // 50):  # 20 ms frames
            piece = chunk[start:start + tts.sample_rate // 50]
            await source.capture_frame(rtc.AudioFrame(piece.tobytes(), tts.sample_rate, 1, piece.size))
    await source.wait_for_playout()
    ctx.delete_room()
    ctx.shutdown("AI provider unavailable")
