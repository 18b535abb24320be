"""Speech-to-text that says how sure it is: livekit-plugins-openai's STT, asked for Whisper's own scores.

The plugin keeps only the text of a transcription. This STT asks for `verbose_json` (the segments with their average
log-probability, as OpenAI's whisper-1, the local endpoint and other Whisper servers give them) and sets the
transcript's confidence from them, so the turn policy can ask a caller to say again what the line garbled instead of
answering it. OpenAI's gpt-4o transcription models have no segments: their confidence comes from the token
log-probabilities they return when asked (`include=["logprobs"]`). A server that returns neither gets confidence 1.0:
unknown is treated as heard.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import openai as openai_client
from livekit import rtc
from livekit.agents import APIConnectionError, APIConnectOptions, APIStatusError, APITimeoutError, LanguageCode, stt
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.utils import AudioBuffer, is_given
from livekit.plugins import openai

log = logging.getLogger("agent.stt")
UNKNOWN = 1.0
LOGPROB_MODELS = ("gpt-4o-transcribe", "gpt-4o-mini-transcribe")  # OpenAI's models that return token logprobs


def confidence_from_segments(segments: Iterable[Any]) -> float | None:
    """exp(mean token log-probability) over verbose_json segments (dicts or objects with `avg_logprob` and
    `tokens`); None when there are none."""
    total, count = 0.0, 0
    for segment in segments:
        logprob, tokens = _field(segment, "avg_logprob"), _field(segment, "tokens")
        if logprob is None:
            continue
        weight = max(len(tokens or ()), 1)
        total, count = total + logprob * weight, count + weight
    return math.exp(total / count) if count else None


def confidence_from_logprobs(logprobs: Iterable[Any]) -> float | None:
    """exp(mean log-probability) over the tokens a gpt-4o transcription returns; None when there are none."""
    values = [value for item in logprobs if (value := _field(item, "logprob")) is not None]
    return math.exp(sum(values) / len(values)) if values else None


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


class STT(openai.STT):
    """openai.STT whose transcripts carry a confidence (SpeechData.confidence, the user message's
    transcript_confidence)."""

    _scores_refused = False  # the server said 400 to `verbose_json`: plain transcripts from then on

    async def _recognize_impl(self, buffer: AudioBuffer, *, language: NotGivenOr[str | list[str]] = NOT_GIVEN,
                              conn_options: APIConnectOptions) -> stt.SpeechEvent:
        if is_given(language):
            self._opts.languages = [language] if isinstance(language, str) else list(language)
        languages = self._opts.languages or []
        wav = rtc.combine_audio_frames(buffer).to_wav_bytes()
        if self._opts.model in LOGPROB_MODELS and "api.openai.com" in str(self._client.base_url):
            scoring = {"response_format": "json", "include": ["logprobs"]}
        elif self._scores_refused:
            scoring = {"response_format": "json"}
        else:
            scoring = {"response_format": "verbose_json"}
        try:
            try:
                response = await self._transcribe(wav, languages, conn_options, scoring)
            except openai_client.BadRequestError:
                if scoring.get("response_format") != "verbose_json":
                    raise
                self._scores_refused = True
                log.warning("the STT server refused response_format verbose_json; transcripts carry no confidence, "
                            "so garbled caller turns are answered as heard")
                response = await self._transcribe(wav, languages, conn_options, {"response_format": "json"})
        except openai_client.APITimeoutError:
            raise APITimeoutError() from None
        except openai_client.APIStatusError as error:
            raise APIStatusError(error.message, status_code=error.status_code, request_id=error.request_id,
                                 body=error.body) from None
        except Exception as error:
            raise APIConnectionError() from error
        confidence = (confidence_from_logprobs(getattr(response, "logprobs", None) or [])
                      if "include" in scoring else confidence_from_segments(getattr(response, "segments", None) or []))
        language_code = getattr(response, "language", None) or (languages[0] if len(languages) == 1 else "")
        data = stt.SpeechData(text=response.text, language=LanguageCode(language_code),
                              confidence=UNKNOWN if confidence is None else confidence)
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=[data])

    async def _transcribe(self, wav: bytes, languages: list[str], conn_options: APIConnectOptions, scoring: dict):
        return await self._client.audio.transcriptions.create(
            file=("file.wav", wav, "audio/wav"), model=self._opts.model,
            language=languages[0] if len(languages) == 1 else openai_client.omit,
            prompt=self._opts.prompt if is_given(self._opts.prompt) else openai_client.omit,
            temperature=self._opts.temperature if is_given(self._opts.temperature) else openai_client.omit,
            timeout=max(30.0, conn_options.timeout), **scoring)
