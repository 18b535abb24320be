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
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from stack.settings import LOOPBACK, Settings

from .audio import AudioDecodeError, decode_to_mono
from .guard import Busy, Guard, Lane
from .llm import ChatModel, ContextLengthExceeded, Generation
from .schemas import ChatRequest, NamedToolChoice, SpeechRequest, TranscriptionForm, TurnEndRequest, first_problem
from .stt import WHISPER_RATE, SpeechToText, text_of
from .tool_calls import ToolCall, ToolCallParser
from .tts import TextToSpeech
from .turn_end import TurnEndModel

log = logging.getLogger("local_openai")
PCM_RATE = 24000  # OpenAI's pcm format: s16le mono at 24 kHz
MAX_JSON_BYTES = 1 << 20  # a JSON request's body; a whole 4096-token conversation is a few tens of KB
FORM_OVERHEAD_BYTES = 64 << 10  # an upload's multipart headers and text fields (each at most this), over the file

# OpenAI's model names are aliases of the local models, so an unchanged OpenAI configuration works here.
STT_ALIASES = {"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-transcribe-diarize"}
TTS_ALIASES = {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"}
LLM_ALIASES = {"gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5", "gpt-5-mini",
               "gpt-5-nano", "gpt-3.5-turbo"}


KEEPALIVE_S = 1.0  # an SSE comment this often while the model prefills, so clients' read timeouts don't fire
_DONE = object()


async def token_stream(models: Models, prompt: list[int], max_tokens: int, temperature: float, usage: Generation):
    """The LLM's text deltas, generated on a worker thread; None stands for "still working" (a keep-alive).

    When the client goes away, generation stops and the model is free for the next request; a request still
    waiting for the model then never evaluates its prompt.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancelled = threading.Event()

    def produce():
        try:
            for delta in models.llm.stream(prompt, max_tokens, temperature, usage, cancelled):
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


def error_body(status: int, message: str, type_: str, param: str | None = None, code: str | None = None,
               headers: dict[str, str] | None = None):
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}},
                        status_code=status, headers=headers)


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


async def unless_client_leaves(request: Request, work):
    """`await work`, cancelled (and ClientGone raised) as soon as the client disconnects; the request's body must
    have been read already."""
    task = asyncio.ensure_future(work)

    async def disconnected():
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    if task.cancelled():
        raise ClientGone
    return task.result()


class LaneStream(StreamingResponse):
    """A streaming answer that leaves its model's queue when it ends, however it ends (sent, failed, or the client
    went away), and closes its generator at once so the work behind it stops."""

    def __init__(self, content, lane: Lane, **options):
        super().__init__(content, **options)
        self._lane = lane

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._lane.leave()
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()


@dataclass
class Models:
    stt: SpeechToText
    llm: ChatModel
    tts: TextToSpeech
    turn_end: TurnEndModel | None = None  # without it, /v1/turn_end answers 404

    @classmethod
    def load(cls, settings: Settings) -> Models:
        return cls(stt=SpeechToText(settings.local_stt_model), llm=ChatModel(settings.local_llm_model),
                   tts=TextToSpeech(settings.local_tts_voice), turn_end=TurnEndModel(settings.local_llm_model))

    def names(self) -> dict[str, str]:
        return {"stt": self.stt.model_name, "llm": self.llm.model_name, "tts": "piper"}


def create_app(models: Models, settings: Settings, bind_host: str = LOOPBACK) -> FastAPI:
    """The API over `models`; it answers only requests with settings.local_openai_api_key (see guard.py)."""
    if not settings.local_openai_api_key:
        raise ValueError("the local endpoint needs an API key (LOCAL_OPENAI_API_KEY)")
    max_upload_mb = settings.local_openai_max_upload_mb
    max_upload_bytes = max_upload_mb * 2**20
    max_audio_s = settings.local_openai_max_audio_s
    # Body limits per route (max_body_size: counted as the body streams, chunked or not); a declared Content-Length
    # past them is refused by the Guard before anything is read.
    app = FastAPI(title="Local OpenAI-compatible endpoint", docs_url=None, redoc_url=None)
    json_limit = (MAX_JSON_BYTES, f"{MAX_JSON_BYTES >> 10} KB", None)
    app.add_middleware(Guard, api_key=settings.local_openai_api_key, extra_hosts=[bind_host], body_limits={
        "/v1/audio/transcriptions": (max_upload_bytes + FORM_OVERHEAD_BYTES, f"{max_upload_mb} MB", "file"),
        "/v1/chat/completions": json_limit, "/v1/audio/speech": json_limit, "/v1/turn_end": json_limit})
    lanes = {kind: Lane(kind, settings.local_openai_max_queue) for kind in ("stt", "llm", "tts", "turn_end")}
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
        message, param = first_problem(error)
        return error_body(400, message, "invalid_request_error", param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        if error.status_code == 413:
            limit = f"{max_upload_mb} MB" if request.url.path.endswith("/transcriptions") else \
                f"{MAX_JSON_BYTES >> 10} KB"
            return error_body(413, f"the request body is larger than {limit}, the most this endpoint reads",
                              "invalid_request_error", "file" if "MB" in limit else None)
        return error_body(error.status_code, str(error.detail), "invalid_request_error")

    @app.exception_handler(Busy)
    async def busy(_: Request, error: Busy):
        return error_body(429, str(error), "rate_limit_error", code="queue_full", headers={"retry-after": "1"})

    @app.exception_handler(ClientGone)
    async def client_gone(_: Request, error: ClientGone):
        return error_body(499, "the client closed the connection", "invalid_request_error")

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception):
        reference = uuid.uuid4().hex[:12]
        log.exception("request failed (reference %s)", reference)
        return error_body(500, f"the local endpoint failed; its log has the details under reference {reference}",
                          "server_error")

    @app.get("/healthz")
    async def healthz():
        """Ready (every model loaded): the one path that wants no key."""
        return {"ok": True}

    @app.get("/v1/models")
    async def list_models():
        created = int(time.time())
        ids = sorted({*names.values(), *STT_ALIASES, *TTS_ALIASES, *LLM_ALIASES})
        return {"object": "list",
                "data": [{"id": i, "object": "model", "created": created, "owned_by": "local"} for i in ids]}

    @app.post("/v1/audio/transcriptions", max_body_size=max_upload_bytes + FORM_OVERHEAD_BYTES)
    async def transcriptions(request: Request):
        # The body is read as it streams (chunked or not) and refused past the limit, never held whole in memory:
        # the form parser spools the file to disk past 1 MB, and the decoder reads it from there.
        try:
            form = await request.form(max_files=1, max_fields=16, max_part_size=FORM_OVERHEAD_BYTES)
        except MultiPartException as error:
            raise APIError(400, f"expected a multipart form with a file: {error.message}", param="file") from None
        except StarletteHTTPException as error:  # Starlette's words for a malformed form; a 413 stays a 413
            if error.status_code == 413:
                raise
            raise APIError(400, f"expected a multipart form with a file: {error.detail}", param="file") from None
        try:
            fields = TranscriptionForm.model_validate({k: v for k, v in form.items() if isinstance(v, str)})
        except ValidationError as error:
            message, param = first_problem(error)
            raise APIError(400, message, param=param) from None
        check_model(fields.model, "stt", STT_ALIASES)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise APIError(400, "the `file` field is required and must be an audio file", param="file")
        lanes["stt"].enter()
        cancelled = threading.Event()
        try:
            try:
                audio = await run_in_threadpool(decode_to_mono, upload.file, WHISPER_RATE, max_audio_s)
            except AudioDecodeError as error:
                raise APIError(400, str(error), param="file") from None
            try:
                segments = await unless_client_leaves(request, run_in_threadpool(
                    models.stt.segments, audio, WHISPER_RATE, language=fields.language, prompt=fields.prompt,
                    cancelled=cancelled))
            finally:
                cancelled.set()  # the client left: a transcription still waiting for the model never starts
        finally:
            lanes["stt"].leave()
            await form.close()
        text = text_of(segments)
        if fields.response_format == "text":
            return PlainTextResponse(text)
        if fields.response_format == "verbose_json":
            return {"task": "transcribe", "language": fields.language or "en", "duration": len(audio) / WHISPER_RATE,
                    "text": text, "segments": [segment.verbose_json(index) for index, segment in enumerate(segments)]}
        return {"text": text}

    @app.post("/v1/audio/speech", max_body_size=MAX_JSON_BYTES)
    async def speech(body: SpeechRequest):
        check_model(body.model, "tts", TTS_ALIASES)
        text, speed, response_format = body.input, body.speed, body.response_format
        if not text.strip():
            raise APIError(400, "`input` must be a non-empty string", param="input")
        if response_format not in ("pcm", "wav"):
            raise APIError(400, f"response_format {response_format!r} is not supported by the local endpoint; "
                                "use pcm (s16le, 24 kHz) or wav", param="response_format")
        lanes["tts"].enter()

        def pcm_chunks():
            for chunk in models.tts.synthesize_at(text, PCM_RATE, speed):
                yield chunk.tobytes()

        if response_format == "pcm":
            return LaneStream(pcm_chunks(), lanes["tts"], media_type="audio/pcm")

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

        return LaneStream(wav_stream(), lanes["tts"], media_type="audio/wav")

    @app.post("/v1/turn_end", max_body_size=MAX_JSON_BYTES)
    async def turn_end(body: TurnEndRequest, request: Request):
        """Not OpenAI's: the chance that the caller has finished (local_openai/turn_end.py); the agent's turn
        detector asks it when its transcript comes in."""
        if models.turn_end is None:
            raise APIError(404, "this endpoint has no end-of-turn model", code="not_found")
        lanes["turn_end"].enter()
        try:
            probability = await unless_client_leaves(request, run_in_threadpool(
                models.turn_end.probability, body.said, body.last_reply))
        finally:
            lanes["turn_end"].leave()
        return {"object": "turn_end", "model": models.turn_end.model_name, "probability": probability}

    @app.post("/v1/chat/completions", max_body_size=MAX_JSON_BYTES)
    async def chat_completions(body: ChatRequest, request: Request):
        check_model(body.model, "llm", LLM_ALIASES)
        messages = [message.model_dump(exclude_none=True) for message in body.messages]
        tools = [tool.model_dump(exclude_none=True) for tool in body.tools or []]
        tool_choice = body.tool_choice.model_dump() if isinstance(body.tool_choice, NamedToolChoice) \
            else body.tool_choice
        tool_names = {t["function"]["name"] for t in tools}
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
        max_tokens = body.max_completion_tokens or body.max_tokens or 256
        temperature = body.temperature if body.temperature is not None else 0.3
        model_name = body.model
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
        one_call = body.parallel_tool_calls is False
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
            if body.stream_options and body.stream_options.include_usage:
                payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                           "model": model_name, "choices": [], "usage": _usage(usage)}
                yield f"data: {json.dumps(payload)}\n\n"
            yield "data: [DONE]\n\n"

        lanes["llm"].enter()
        if body.stream:
            return LaneStream(generate(), lanes["llm"], media_type="text/event-stream")

        async def whole_text() -> str:
            return "".join([t async for t in text_deltas() if t])

        try:
            text = await unless_client_leaves(request, whole_text())
        finally:
            lanes["llm"].leave()
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
