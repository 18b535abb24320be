"""The AI providers' clients, as the settings choose them (Settings.ai_provider decides, in stack/settings.py).

OPENAI_API_KEY set: OpenAI's STT, LLM and TTS. No key: the same livekit-plugins-openai plugins, pointed at the
local offline endpoint, with LOCAL_OPENAI_API_KEY as their key. OPENAI_BASE_URL points either at any other
OpenAI-compatible server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from stack.settings import Settings

log = logging.getLogger("agent.providers")

NO_KEY = "none"  # an OpenAI-compatible server that wants no key; the client library insists on one


@dataclass(frozen=True)
class ProviderChoice:
    name: str  # "openai", "local" or "openai-compatible"
    base_url: str | None
    api_key: str
    stt_model: str
    llm_model: str
    tts_model: str
    tts_voice: str
    llm_temperature: float = Settings.default("openai_llm_temperature")

    def describe(self) -> str:
        return (f"AI provider: {self.name} at {self.base_url or 'https://api.openai.com/v1'}; "
                f"STT {self.stt_model}, LLM {self.llm_model}, TTS {self.tts_model}/{self.tts_voice}")


def choose_providers(settings: Settings | None = None) -> ProviderChoice:
    """The providers `settings` (default: Settings.load()) name."""
    settings = Settings.load() if settings is None else settings
    return ProviderChoice(
        name=settings.ai_provider, base_url=settings.ai_base_url,
        api_key=(settings.local_openai_api_key if settings.uses_local_ai else settings.openai_api_key) or NO_KEY,
        stt_model=settings.openai_stt_model, llm_model=settings.openai_llm_model,
        tts_model=settings.openai_tts_model, tts_voice=settings.openai_tts_voice,
        llm_temperature=settings.openai_llm_temperature,
    )


def session_connect_options():
    """Time limits for the AgentSession's STT, LLM and TTS requests (the plugins apply these per request, over
    their clients' own). A CPU server under load can take well over livekit's default 10 s, and each of its three
    retries would queue the same work again on the busy server: 30 s, one retry."""
    from livekit.agents import APIConnectOptions
    from livekit.agents.voice.agent_session import SessionConnectOptions

    patient = APIConnectOptions(max_retry=1, timeout=30.0)
    return SessionConnectOptions(stt_conn_options=patient, llm_conn_options=patient, tts_conn_options=patient)


def build_plugins(choice: ProviderChoice, language: str = "en", stt_prompt: str = ""):
    """STT, LLM and TTS instances for an AgentSession (with session_connect_options()); all three are
    livekit-plugins-openai (the STT reporting its confidence: agent/stt.py). `stt_prompt` primes the transcription
    with the business's own words."""
    from livekit.agents import NOT_GIVEN
    from livekit.plugins import openai

    from .stt import STT

    stt = STT(model=choice.stt_model, language=language, base_url=choice.base_url, api_key=choice.api_key,
              prompt=stt_prompt or NOT_GIVEN)
    # One tool call per answer: a phone turn needs at most one action, and small models otherwise call them all.
    llm = openai.LLM(model=choice.llm_model, base_url=choice.base_url, api_key=choice.api_key,
                     temperature=choice.llm_temperature, parallel_tool_calls=False)
    # pcm: raw 24 kHz audio, the least latency (no decoder) on both OpenAI and the local endpoint.
    tts = openai.TTS(model=choice.tts_model, voice=choice.tts_voice, base_url=choice.base_url,
                     api_key=choice.api_key, response_format="pcm")
    return stt, llm, tts


def check_credentials(choice: ProviderChoice, timeout: float = 5.0) -> str | None:
    """None if the provider accepts our key; else one line saying what is wrong and how to fix it."""
    import httpx

    url = f"{(choice.base_url or 'https://api.openai.com/v1').rstrip('/')}/models"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {choice.api_key}"}, timeout=timeout)
    except httpx.HTTPError as error:
        return (f"cannot reach the AI provider at {url} ({error.__class__.__name__}): "
                "check OPENAI_BASE_URL or the network")
    if response.status_code in (401, 403) and choice.name == "local":
        return (f"the local endpoint at {url} rejected LOCAL_OPENAI_API_KEY (HTTP {response.status_code}): the agent "
                "and the endpoint read different keys; restart both with `python cli.py down` and `python cli.py up`")
    if response.status_code in (401, 403):
        return (f"the AI provider at {url} rejected OPENAI_API_KEY (HTTP {response.status_code}): the key is wrong "
                "or expired; fix it in .env, or remove it to use the local offline models")
    if response.status_code >= 400:
        return f"the AI provider at {url} answered HTTP {response.status_code} to a models check"
    return None
