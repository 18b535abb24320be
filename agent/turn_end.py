"""The agent's turn detector on the local AI: has the caller finished, judged from the words of the transcript.

livekit-agents' bundled audio detector (turn-detector-v1-mini) hardly tells a finished caller from one who paused
mid-sentence over an 8 kHz line: on tests/data/turn_pauses.csv it let 68 % of finished turns go at once and 30 % of
unfinished ones too (Piper voice; docs/benchmarks.md, bench/turn_eval.py). The local endpoint's end-of-turn model
(local_openai/turn_end.py) reads the transcript instead. The session asks it when a final transcript comes in; a
probability under END_OF_TURN_THRESHOLD keeps the turn open for the endpointing's max_delay, anything else ends it at
min_delay.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from livekit.agents.llm import ChatContext

log = logging.getLogger("agent.turn_end")
# Chosen on bench/turn_eval.py's labelled pauses (docs/benchmarks.md): the most finished turns let go at once for at
# most about 1 in 10 paused callers judged finished.
END_OF_TURN_THRESHOLD = 0.01
TIMEOUT_S = 1.0  # as livekit-agents waits for its own detector; past it, the turn ends as if finished


class TranscriptTurnDetector:
    """livekit-agents' text turn-detector interface (`predict_end_of_turn` over the chat context) on the local
    endpoint's POST /v1/turn_end."""

    def __init__(self, *, base_url: str, api_key: str, threshold: float = END_OF_TURN_THRESHOLD,
                 timeout: float = TIMEOUT_S) -> None:
        self._url = f"{base_url.rstrip('/')}/turn_end"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._threshold, self._timeout = threshold, timeout
        self._client: httpx.AsyncClient | None = None
        self._failed = False
        self._priming: set[asyncio.Task] = set()

    @property
    def model(self) -> str:
        return "local-turn-end"

    @property
    def provider(self) -> str:
        return "local"

    @property
    def client(self) -> httpx.AsyncClient:
        """One client per call, made on first use (inside the call's event loop)."""
        if self._client is None:
            self._client = httpx.AsyncClient()
        return self._client

    async def unlikely_threshold(self, language) -> float | None:
        return self._threshold

    async def supports_language(self, language) -> bool:
        return True  # the chat model reads any language; the threshold was chosen on English

    async def predict_end_of_turn(self, chat_ctx: ChatContext, *, timeout: float | None = None) -> float:
        said, last_reply = last_exchange(chat_ctx)
        try:
            response = await self.client.post(self._url, headers=self._headers, timeout=timeout or self._timeout,
                                               json={"said": said, "last_reply": last_reply})
            response.raise_for_status()
            probability = float(response.json()["probability"])
        except (httpx.HTTPError, KeyError, ValueError) as error:
            # A missed answer must not hold the caller for max_delay: the turn ends as if finished.
            if not self._failed:
                log.warning("end-of-turn check failed (%s): turns end without it", error.__class__.__name__)
            self._failed = True
            return 1.0
        self._failed = False
        return probability

    async def prime(self, last_reply: str) -> None:
        """Has the endpoint evaluate the prompt up to the caller's next words (nothing said), once our reply is
        spoken, so the turn's own check evaluates only the caller's words. Only an optimisation: errors pass."""
        try:
            await self.client.post(self._url, headers=self._headers, timeout=self._timeout * 5,
                                    json={"said": "", "last_reply": last_reply})
        except httpx.HTTPError:
            pass

    def prime_after_replies(self, session) -> None:
        """Primes after each of the session's spoken replies (the greeting included)."""
        def on_item(event) -> None:
            item = event.item
            if getattr(item, "role", None) == "assistant" and (text := item.text_content):
                task = asyncio.ensure_future(self.prime(text))
                self._priming.add(task)
                task.add_done_callback(self._priming.discard)
        session.on("conversation_item_added", on_item)

    async def aclose(self) -> None:
        for task in list(self._priming):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()


def turn_detector(providers):
    """The transcript detector where the local endpoint runs (it alone serves /v1/turn_end); elsewhere (OpenAI, another
    OpenAI-compatible server) livekit-agents' bundled audio detector, offline, in every mode (dev/console would
    otherwise try LiveKit Cloud first)."""
    if providers.name == "local":
        return TranscriptTurnDetector(base_url=providers.base_url, api_key=providers.api_key)
    from livekit.agents import inference

    return inference.TurnDetector(version="v1-mini")


def last_exchange(chat_ctx: ChatContext) -> tuple[str, str]:
    """(what the caller has said in this turn, the assistant's last words before it)."""
    said: list[str] = []
    for item in reversed(chat_ctx.items):
        if getattr(item, "type", None) != "message":
            continue
        text = item.text_content or ""
        if item.role == "user":
            said.insert(0, text)
        elif item.role == "assistant":
            return " ".join(said), text
    return " ".join(said), ""
