"""A stand-in for a fast OpenAI-compatible server (a GPU one), with fixed, known delays: what the rest of the stack
adds to a turn when the models are fast, measured by bench/calls.py with OPENAI_BASE_URL pointing here.

    .venv/bin/python -m bench.standin_endpoint --port 8011 [--stt-ms 100] [--llm-ms 150] [--tts-ms 80]

It is no model. Its STT hears only bench/calls.py's caller lines, told apart by their length (it synthesizes them
with the local Piper voice at start, as the bench does); its LLM streams one fixed sentence; its TTS answers with a
tone as long as the text would take to say. Each waits its delay before its first byte.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
import wave

import numpy as np
import uvicorn
from fastapi import FastAPI, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse

REPLY = "Sure, I can help you with that. What day would suit you?"
SPEECH_RATE = 24000  # the pcm format's rate
SECONDS_PER_CHARACTER = 0.065  # about Piper's pace


def caller_lines() -> list[tuple[float, str]]:
    """(seconds, text) of each line bench/calls.py speaks."""
    from bench.calls import QUESTIONS
    from local_openai.tts import TextToSpeech
    from tools.softphone.media import PORT_RATE, synthesize

    tts = TextToSpeech()
    lines = []
    for text in QUESTIONS:
        samples = synthesize(text, tts)
        lines.append((len(samples) / PORT_RATE, text))
    return lines


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as reader:
        return reader.getnframes() / reader.getframerate()


def tone(seconds: float) -> bytes:
    """A voiced-sounding tone (a 150 Hz pulse train with its harmonics, syllable-shaped), int16 at SPEECH_RATE."""
    t = np.arange(int(seconds * SPEECH_RATE)) / SPEECH_RATE
    voice = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
    syllables = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return (0.2 * 32767 * voice / 2.3 * syllables).astype("<i2").tobytes()


def build_app(stt_s: float, llm_s: float, tts_s: float, lines: list[tuple[float, str]]) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "stand-in", "object": "model"}]}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(file: UploadFile):
        heard = wav_seconds(await file.read())
        await asyncio.sleep(stt_s)
        # The VAD trims the caller's silence: the nearest length is the line.
        return {"text": min(lines, key=lambda line: abs(line[0] - heard))[1]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        created = int(time.time())
        if not body.get("stream"):
            await asyncio.sleep(llm_s)
            return {"id": "chatcmpl-standin", "object": "chat.completion", "created": created, "model": "stand-in",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": REPLY}}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}

        async def events():
            await asyncio.sleep(llm_s)
            for index, word in enumerate(REPLY.split(" ")):
                delta = {"role": "assistant", "content": ("" if index == 0 else " ") + word}
                chunk = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": created,
                         "model": "stand-in", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n"
                await asyncio.sleep(0.01)  # 100 words/s
            done = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": created,
                    "model": "stand-in", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/audio/speech")
    async def speech(request: Request):
        body = await request.json()
        await asyncio.sleep(tts_s)
        if body.get("response_format", "mp3") != "pcm":
            return JSONResponse({"error": {"message": "the stand-in speaks pcm only"}}, status_code=400)
        return Response(tone(len(body.get("input", "")) * SECONDS_PER_CHARACTER), media_type="audio/pcm")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--stt-ms", type=float, default=100, help="delay before a transcript")
    parser.add_argument("--llm-ms", type=float, default=150, help="delay before the first token")
    parser.add_argument("--tts-ms", type=float, default=80, help="delay before the first audio")
    args = parser.parse_args()
    app = build_app(args.stt_ms / 1000, args.llm_ms / 1000, args.tts_ms / 1000, caller_lines())
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
