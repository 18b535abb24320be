"""The requests the endpoint accepts, as pydantic models with bounds: a wrong type or an out-of-range value is a 400
naming the field, before any model runs. Fields OpenAI defines that the local models do not use are ignored."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_OUTPUT_TOKENS = 4096  # the LLM's whole context (llm.ChatModel): no answer can be longer
MAX_MESSAGES = 512
MAX_TOOLS = 64
MAX_SPEECH_CHARS = 4096
MAX_TURN_CHARS = 4096  # one turn of a call (turn_end reads only its last words)
MAX_PROMPT_CHARS = 4096  # the transcription's prompt (Whisper reads only its last 224 tokens)

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
ModelName = Annotated[str, Field(min_length=1, max_length=256)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")  # kept as sent (the chat template may read them), never trusted


class ContentPart(_Open):
    type: str = "text"
    text: str | None = None


class FunctionCall(_Open):
    name: str = Field(max_length=64)
    arguments: str = ""


class ToolCall(_Open):
    id: str | None = Field(None, max_length=128)
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = Field(None, max_length=MAX_TOOLS)
    tool_call_id: str | None = Field(None, max_length=128)
    name: str | None = Field(None, max_length=64)


class FunctionSpec(_Open):
    name: Name
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Open):
    type: Literal["function"] = "function"
    function: FunctionSpec


class NamedFunction(BaseModel):
    name: Name


class NamedToolChoice(BaseModel):
    type: Literal["function"] = "function"
    function: NamedFunction


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: ModelName
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    tools: list[Tool] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = Field(None, ge=1, le=MAX_OUTPUT_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_OUTPUT_TOKENS)
    temperature: float | None = Field(None, ge=0, le=2)
    stream: bool = False
    stream_options: StreamOptions | None = None


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: ModelName
    input: str = Field(min_length=1, max_length=MAX_SPEECH_CHARS)
    voice: str | None = Field(None, max_length=64)
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = Field(None, max_length=MAX_SPEECH_CHARS)


class TurnEndRequest(BaseModel):
    """Our own route (OpenAI has none): has the caller finished saying `said`, after our `last_reply`?"""
    model_config = ConfigDict(extra="ignore")

    said: str = Field(max_length=MAX_TURN_CHARS)
    last_reply: str = Field("", max_length=MAX_TURN_CHARS)


class TranscriptionForm(BaseModel):
    """The multipart form's text fields (the file is checked on its own)."""
    model_config = ConfigDict(extra="ignore")

    model: ModelName
    language: str | None = Field(None, max_length=16, pattern=r"^[A-Za-z-]*$")
    prompt: str | None = Field(None, max_length=MAX_PROMPT_CHARS)
    response_format: Literal["json", "text", "verbose_json"] = "json"
    temperature: float | None = Field(None, ge=0, le=1)


_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none"}


def first_problem(error: ValidationError | RequestValidationError) -> tuple[str, str | None]:
    """The first problem as (one line, the field's dotted name): what is wrong, never the value that was sent."""
    problems = error.errors()
    first = problems[0] if problems else {}
    location = []
    for part in first.get("loc", ()):
        if isinstance(part, str) and not (part.isidentifier() and part.islower() and part not in _TYPE_TAGS):
            break  # a union's member ("str", "list[ContentPart]", "NamedToolChoice"): the field ends before it
        if part != "body":
            location.append(str(part))
    param = ".".join(location) or None
    return f"invalid request: {param or 'the body'}: {first.get('msg', 'malformed')}", param
