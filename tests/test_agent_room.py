"""One room-level test: a LiveKit client (as a browser user would be) joins a room on the real stack, asks a spoken
question, and gets the agent's spoken answer and its transcription on `lk.transcription`."""

from __future__ import annotations

import asyncio
import re
import time

import numpy as np
import pytest
from livekit import api, rtc

pytestmark = pytest.mark.call
RATE = 48000
FRAME = RATE // 50  # 20 ms


def token_for(settings, room: str, identity: str) -> str:
    return (api.AccessToken(settings.api_key, settings.api_secret)
            .with_identity(identity)
            .with_grants(api.VideoGrants(room_join=True, room=room))
            .with_room_config(api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name="phone-assistant")]))
            .to_jwt())


def spoken_question(text: str) -> np.ndarray:
    from local_openai.audio import StreamResampler
    from local_openai.tts import TextToSpeech

    tts = TextToSpeech()
    resampler = StreamResampler(tts.sample_rate, RATE)
    pcm = [resampler.push(chunk) for chunk in tts.synthesize(text)]
    return np.concatenate([*pcm, resampler.push(None)])


async def test_spoken_question_gets_a_spoken_and_transcribed_answer(agent_stack):
    settings = agent_stack.settings
    question = await asyncio.to_thread(spoken_question, "What are your opening hours?")
    room = rtc.Room()
    transcripts: list[dict] = []
    agent_audio: list[tuple[float, float]] = []  # (time, rms)
    listeners: list[asyncio.Future] = []  # held, so that no listening task is garbage-collected mid-call

    async def read_transcript(reader: rtc.TextStreamReader, participant: str):
        text = await reader.read_all()
        transcripts.append({"from": participant, "text": text, "attributes": dict(reader.info.attributes),
                            "at": time.monotonic()})

    room.register_text_stream_handler(
        "lk.transcription", lambda reader, who: asyncio.ensure_future(read_transcript(reader, who)))

    async def listen(track: rtc.Track):
        async for event in rtc.AudioStream(track, sample_rate=RATE, num_channels=1):
            samples = np.frombuffer(event.frame.data, dtype=np.int16)
            agent_audio.append((time.monotonic(), float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))))

    @room.on("track_subscribed")
    def on_track(track, _publication, _participant):
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            listeners.append(asyncio.ensure_future(listen(track)))

    room_name = f"web-test-{int(time.time())}"
    await room.connect(settings.livekit_url, token_for(settings, room_name, "web-tester"))
    try:
        source = rtc.AudioSource(RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("mic", source)
        publication = await room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))

        async def send(samples: np.ndarray):
            for start in range(0, samples.size - FRAME + 1, FRAME):
                chunk = samples[start:start + FRAME].astype(np.int16)
                await source.capture_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, FRAME))

        silence = np.zeros(RATE, dtype=np.int16)
        # Wait for the greeting to be spoken and finished, sending silence like an open microphone.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(t["from"] != "web-tester" for t in transcripts):
            await send(silence)
        assert any(t["from"] != "web-tester" for t in transcripts), "the agent never greeted"
        await send(np.tile(silence, 3))

        spoke_until = time.monotonic() + question.size / RATE
        await send(question)
        await send(silence)
        spoke_until_sent = time.monotonic()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            agent_lines = [t for t in transcripts if t["from"] != "web-tester" and t["at"] > spoke_until]
            if agent_lines:
                break
            await send(silence)
        await send(np.tile(silence, 2))
    finally:
        await room.disconnect()

    user_lines = [t for t in transcripts if t["attributes"].get("lk.transcribed_track_id") == publication.sid]
    # Whisper has heard "opening hours" as "opening nowers": either word shows the question was transcribed.
    assert any(re.search(r"opening|hours", t["text"], re.I) for t in user_lines), transcripts
    answer = " ".join(t["text"] for t in transcripts if t["from"] != "web-tester" and t["at"] > spoke_until)
    assert answer, f"no answer transcribed after the question: {transcripts}"
    assert any(word in answer.lower() for word in ("9", "nine", "monday", "friday", "hours")), answer
    loud = [at for at, rms in agent_audio if rms > 300 and at > spoke_until_sent]
    assert loud, "the agent's answer was silence"
    print(f"\nvoice-to-voice at the client: {loud[0] - spoke_until_sent:.2f} s after the question ended "
          f"(question {question.size / RATE:.1f} s); answer: {answer!r}")
