"""The OpenAI-compatible HTTP API over the local models: what livekit-plugins-openai (and the `openai` client) call."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
import uuid
import wave
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from stack.settings import Settings

from .audio import AudioDecodeError, decode_to_mono
from .llm import ChatModel, ContextLengthExceeded, Generation
from .stt import WHISPER_RATE, SpeechToText
from .tool_calls import ToolCall, ToolCallParser
from .tts import TextToSpeech

log = logging.getLogger("local_openai")
MAX_SPEECH_CHARS = 4096
PCM_RATE = 24000  # OpenAI's pcm format: s16le mono at 24 kHz

# OpenAI's model names are aliases of the local models, so an unchanged OpenAI configuration works here.
STT_ALIASES = {"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-transcribe-diarize"}
TTS_ALIASES = {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"}
LLM_ALIASES = {"gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5", "gpt-5-mini",
               "gpt-5-nano", "gpt-3.5-turbo"}


KEEPALIVE_S = 1.0  # an SSE comment this often while the model prefills, so clients' read timeouts don't fire
_DONE = object()


async def token_stream(models: Models, prompt: list[int], max_tokens: int, temperature: float, usage: Generation):
    """The LLM's text deltas, generated on a worker thread; None stands for "still working" (a keep-alive).

    When the client goes away, generation stops and the model is free for the next request.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancelled = threading.Event()

    def produce():
        try:
            for delta in models.llm.stream(prompt, max_tokens, temperature, usage):
                if cancelled.is_set():
                    break
                loop.call_soon_threadsafe(queue.put_nowait, delta)
        except Exception as error:  # surfaced to the request below
            loop.call_soon_threadsafe(queue.put_nowait, error)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)

    worker = loop.run_in_executor(None, produce)
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield None
                continue
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        cancelled.set()
        del worker


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code


def error_body(status: int, message: str, type_: str, param: str | None = None, code: str | None = None):
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}},
                        status_code=status)


@dataclass
class Models:
    stt: SpeechToText
    llm: ChatModel
    tts: TextToSpeech

    @classmethod
    def load(cls, settings: Settings) -> Models:
        return cls(stt=SpeechToText(settings.local_stt_model), llm=ChatModel(settings.local_llm_model),
                   tts=TextToSpeech(settings.local_tts_voice))

    def names(self) -> dict[str, str]:
        return {"stt": self.stt.model_name, "llm": self.llm.model_name, "tts": "piper"}


def create_app(models: Models, max_upload_mb: int = Settings.default("local_openai_max_upload_mb")) -> FastAPI:
    max_upload_bytes = max_upload_mb * 2**20
    app = FastAPI(title="Local OpenAI-compatible endpoint", docs_url=None, redoc_url=None)
    names = models.names()

    def check_model(requested: str | None, kind: str, aliases: set[str]) -> None:
        if not requested:
            raise APIError(400, "you must provide a model parameter", param="model")
        if requested not in aliases and requested != names[kind] and requested != kind:
            raise APIError(404, f"The model `{requested}` does not exist here. Use one of: "
                                f"{', '.join(sorted(aliases | {names[kind]}))}", param="model", code="model_not_found")

    @app.exception_handler(APIError)
    async def api_error(_: Request, error: APIError):
        return error_body(error.status, error.message, error.type, error.param, error.code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", [])[1:]) or None
        return error_body(400, f"invalid request: {first.get('msg', 'malformed body')} ({param})",
                          "invalid_request_error", param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException):
        return error_body(error.status_code, str(error.detail), "invalid_request_error")

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception):
        log.exception("request failed")
        return error_body(500, f"the local endpoint failed: {error}", "server_error")

    @app.get("/v1/models")
    async def list_models():
        created = int(time.time())
        ids = sorted({*names.values(), *STT_ALIASES, *TTS_ALIASES, *LLM_ALIASES})
        return {"object": "list",
                "data": [{"id": i, "object": "model", "created": created, "owned_by": "local"} for i in ids]}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        if int(request.headers.get("content-length") or 0) > max_upload_bytes:
            raise APIError(413, f"the upload is larger than {max_upload_mb} MB", param="file")
        try:
            form = await request.form(max_part_size=max_upload_bytes)
        except Exception as error:  # malformed multipart
            raise APIError(400, f"expected a multipart form with a file: {error}", param="file") from None
        check_model(form.get("model"), "stt", STT_ALIASES)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise APIError(400, "the `file` field is required and must be an audio file", param="file")
        data = await upload.read()
        if len(data) > max_upload_bytes:
            raise APIError(413, f"the upload is larger than {max_upload_mb} MB", param="file")
        try:
            audio = await run_in_threadpool(decode_to_mono, data, WHISPER_RATE)
        except AudioDecodeError as error:
            raise APIError(400, str(error), param="file") from None
        language = str(form.get("language") or "") or None
        prompt = str(form.get("prompt") or "") or None
        text = await run_in_threadpool(models.stt.transcribe, audio, WHISPER_RATE, language, prompt)
        response_format = str(form.get("response_format") or "json")
        if response_format == "text":
            return PlainTextResponse(text)
        if response_format == "verbose_json":
            return {"task": "transcribe", "language": language or "en", "duration": len(audio) / WHISPER_RATE,
                    "text": text, "segments": []}
        if response_format != "json":
            raise APIError(400, f"response_format {response_format!r} is not supported here; use json, text or "
                                "verbose_json", param="response_format")
        return {"text": text}

    @app.post("/v1/audio/speech")
    async def speech(body: dict[str, Any]):
        check_model(body.get("model"), "tts", TTS_ALIASES)
        text = body.get("input")
        if not isinstance(text, str) or not text.strip():
            raise APIError(400, "`input` must be a non-empty string", param="input")
        if len(text) > MAX_SPEECH_CHARS:
            raise APIError(400, f"`input` is longer than {MAX_SPEECH_CHARS} characters", param="input")
        response_format = body.get("response_format") or "mp3"
        if response_format not in ("pcm", "wav"):
            raise APIError(400, f"response_format {response_format!r} is not supported by the local endpoint; "
                                "use pcm (s16le, 24 kHz) or wav", param="response_format")
        speed = float(body.get("speed") or 1.0)

        def pcm_chunks():
            for chunk in models.tts.synthesize_at(text, PCM_RATE, speed):
                yield chunk.tobytes()

        if response_format == "pcm":
            return StreamingResponse(pcm_chunks(), media_type="audio/pcm")

        def wav_stream():
            # A streaming WAV: the header declares the largest size, as servers that stream WAV do.
            header = io.BytesIO()
            with wave.open(header, "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(PCM_RATE)
            head = bytearray(header.getvalue())
            head[4:8] = (0xFFFFFFFF - 8).to_bytes(4, "little")
            head[40:44] = (0xFFFFFFFF - 44).to_bytes(4, "little")
            yield bytes(head)
            yield from pcm_chunks()

        return StreamingResponse(wav_stream(), media_type="audio/wav")

    @app.post("/v1/chat/completions")
    async def chat_completions(body: dict[str, Any]):
        check_model(body.get("model"), "llm", LLM_ALIASES)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise APIError(400, "`messages` must be a non-empty list", param="messages")
        tools = body.get("tools") or []
        tool_choice = body.get("tool_choice")
        tool_names = {t.get("function", {}).get("name") for t in tools if isinstance(t, dict)} - {None}
        no_calls = tool_choice == "none"
        if no_calls and tools:
            # The tools stay in the prompt (the cached prefix and what the model knows stay the same turn to
            # turn); the model is told to answer in words, and any call it writes anyway is dropped.
            messages = [*messages, {"role": "system", "content": "Reply in words only."}]
        direct_calls: list[ToolCall] = []
        if isinstance(tool_choice, dict):  # a forced function, as OpenAI's tool_choice means it
            forced = (tool_choice.get("function") or {}).get("name")
            tool = next((t for t in tools if t.get("function", {}).get("name") == forced), None)
            if tool is None:
                raise APIError(400, f"tool_choice names {forced!r}, which is not among the tools", param="tool_choice")
            if not (tool["function"].get("parameters") or {}).get("properties"):
                # Nothing for the model to fill in: the call is the whole answer.
                direct_calls = [ToolCall(name=forced, arguments="{}", id=f"call_{uuid.uuid4().hex[:24]}")]
            else:
                tools, tool_names = [tool], {forced}
                messages = [*messages, {"role": "system", "content": f"Call the {forced} function now."}]
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 256)
        temperature = float(body.get("temperature") if body.get("temperature") is not None else 0.3)
        model_name = body["model"]
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        usage = Generation(prompt_tokens=0)
        try:  # before any byte is sent, so an over-long prompt is a clean 400 as OpenAI gives it
            prompt = [] if direct_calls else models.llm.prompt_tokens(messages, tools)
        except ContextLengthExceeded as error:
            raise APIError(400, str(error), param="messages", code="context_length_exceeded") from None

        def chunk(delta: dict, finish: str | None = None) -> str:
            payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model_name,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(payload)}\n\n"

        # parallel_tool_calls=false (OpenAI's flag): one call per answer, so generation stops once it is complete;
        # small models otherwise go on to call every tool they were offered.
        one_call = body.get("parallel_tool_calls") is False
        parser = ToolCallParser(tool_names, declared_parameters(tools))

        async def text_deltas():
            """Text to send as it comes (None: a keep-alive); the calls are in `parser` once it ends."""
            if direct_calls:
                return
            async with aclosing(token_stream(models, prompt, max_tokens, temperature, usage)) as stream:
                async for delta in stream:
                    yield None if delta is None else parser.feed(delta)
                    if one_call and delta and parser.has_complete_call():
                        return

        def final_calls() -> tuple[str, list[ToolCall]]:
            rest, calls = parser.finish()
            calls = [] if no_calls else direct_calls or calls
            return rest, calls[:1] if one_call else calls

        async def generate():
            yield chunk({"role": "assistant", "content": ""})
            async for text in text_deltas():
                if text is None:
                    yield ": keep-alive\n\n"
                elif text:
                    yield chunk({"content": text})
            rest, calls = final_calls()
            if rest:
                yield chunk({"content": rest})
            for index, call in enumerate(calls):
                yield chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                             "function": {"name": call.name, "arguments": call.arguments}}]})
            yield chunk({}, "tool_calls" if calls else "stop")
            if (body.get("stream_options") or {}).get("include_usage"):
                payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                           "model": model_name, "choices": [], "usage": _usage(usage)}
                yield f"data: {json.dumps(payload)}\n\n"
            yield "data: [DONE]\n\n"

        if body.get("stream"):
            return StreamingResponse(generate(), media_type="text/event-stream")

        text = "".join([t async for t in text_deltas() if t])
        rest, calls = final_calls()
        text += rest
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = [{"id": c.id, "type": "function",
                                      "function": {"name": c.name, "arguments": c.arguments}} for c in calls]
        return {"id": completion_id, "object": "chat.completion", "created": created, "model": model_name,
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
                "usage": _usage(usage)}

    return app


def declared_parameters(tools: list[dict]) -> dict[str, set[str]]:
    return {t["function"]["name"]: set((t["function"].get("parameters") or {}).get("properties") or {})
            for t in tools if isinstance(t, dict) and t.get("function", {}).get("name")}


def _usage(usage: Generation) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens}
