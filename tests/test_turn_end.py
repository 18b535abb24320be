"""The end-of-turn check: the agent's TranscriptTurnDetector asking the real local endpoint's /v1/turn_end, and its
decisions on the labelled pauses (tests/data/turn_pauses.csv)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from livekit.agents.llm import ChatContext

from agent.turn_end import END_OF_TURN_THRESHOLD, TranscriptTurnDetector, last_exchange
from bench.turn_eval import load_turns
from local_openai.turn_end import spoken_words
from tests.support.stack import LOCAL_ENDPOINT_KEY

GREETING = "Thank you for calling Lakeside Bakery. How can I help you?"


@pytest.mark.unit
def test_spoken_words_drop_what_whisper_writes_but_nobody_says():
    assert spoken_words("What time do you?") == "what time do you"
    assert spoken_words("I was wondering if...") == "i was wondering if"
    assert spoken_words("It's gluten-free, isn't it?") == "it's gluten-free isn't it"
    assert spoken_words(" ".join(["word"] * 100), max_words=3) == "word word word"


@pytest.mark.unit
def test_the_last_exchange_is_this_turns_words_after_our_last_reply():
    chat = ChatContext()
    chat.add_message(role="system", content="You are a receptionist.")
    chat.add_message(role="assistant", content="Hello, how can I help?")
    chat.add_message(role="user", content="Are you open")
    chat.add_message(role="assistant", content="We are open today.")
    chat.add_message(role="user", content="And when do you")
    chat.add_message(role="user", content="close tonight?")
    assert last_exchange(chat) == ("And when do you close tonight?", "We are open today.")
    assert last_exchange(ChatContext()) == ("", "")


@pytest.mark.unit
def test_an_endpoint_that_does_not_answer_ends_the_turn_rather_than_holding_the_caller():
    detector = TranscriptTurnDetector(base_url="http://127.0.0.1:9/v1", api_key="none", timeout=0.5)
    chat = ChatContext()
    chat.add_message(role="user", content="What time do you")
    assert asyncio.run(detector.predict_end_of_turn(chat)) == 1.0


async def decide_all(detector: TranscriptTurnDetector, said: list[str], last_reply: str = GREETING) -> list[float]:
    probabilities = []
    for text in said:
        chat = ChatContext()
        chat.add_message(role="assistant", content=last_reply)
        chat.add_message(role="user", content=text)
        probabilities.append(await detector.predict_end_of_turn(chat))
    await detector.aclose()
    return probabilities


@pytest.mark.models
def test_finished_callers_are_let_go_and_paused_ones_kept_on_the_labelled_pauses(local_endpoint):
    """The agent's own threshold, on the written sentences (bench/turn_eval.py measures the same over a phone line's
    transcripts): at least 90 % of finished turns end at once, at most 5 % of paused callers are judged finished."""
    detector = TranscriptTurnDetector(base_url=local_endpoint, api_key=LOCAL_ENDPOINT_KEY, timeout=30)
    turns = load_turns()
    probabilities = asyncio.run(decide_all(detector, [turn.text for turn in turns]))
    decided = [(turn, p >= END_OF_TURN_THRESHOLD) for turn, p in zip(turns, probabilities)]
    finished = [fast for turn, fast in decided if turn.finished]
    paused = [(turn.text, fast) for turn, fast in decided if not turn.finished]
    assert sum(finished) / len(finished) >= 0.90, [t.text for t, fast in decided if t.finished and not fast]
    assert sum(fast for _, fast in paused) / len(paused) <= 0.05, [text for text, fast in paused if fast]


@pytest.mark.models
def test_the_route_wants_the_key_and_refuses_wrong_types(local_endpoint):
    url = f"{local_endpoint}/turn_end"
    assert httpx.post(url, json={"said": "hello"}).status_code == 401
    auth = {"Authorization": f"Bearer {LOCAL_ENDPOINT_KEY}"}
    wrong = httpx.post(url, json={"said": ["not", "text"]}, headers=auth)
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "said", wrong.text
    nothing = httpx.post(url, json={"said": "..."}, headers=auth)
    assert nothing.status_code == 200 and nothing.json()["probability"] == 0.0


@pytest.mark.models
def test_priming_with_our_reply_leaves_only_the_callers_words_to_evaluate_and_the_same_answer():
    from local_openai.turn_end import TurnEndModel
    from stack.settings import Settings

    model = TurnEndModel(Settings.load().local_llm_model)
    reply, said = "We're open Monday to Friday from 9 AM to 5 PM.", "and on saturday"
    unprimed = model.probability(said, GREETING)  # the cache holds the greeting now, not this reply
    assert model.probability("", reply) == 0.0
    prompt = model.prompt(said, reply)
    cached = model._llm.longest_token_prefix(model._llm._input_ids.tolist(), prompt)
    assert cached >= len(model.prompt("", reply)) - 1 and len(prompt) - cached <= 8
    assert model.probability(said, reply) == pytest.approx(TurnEndModel(model.model_name).probability(said, reply),
                                                           abs=1e-3)
    assert unprimed != pytest.approx(model.probability(said, reply), abs=1e-6)  # the reply is in the prompt


@pytest.mark.unit
def test_each_spoken_reply_primes_the_endpoint_with_nothing_said():
    from aiohttp import web
    from livekit.agents import utils
    from livekit.agents.llm import ChatMessage
    from livekit.agents.voice.events import ConversationItemAddedEvent

    async def run():
        asked = []

        async def turn_end(request: web.Request) -> web.Response:
            asked.append((request.headers.get("Authorization"), await request.json()))
            return web.json_response({"probability": 0.0})
        app = web.Application()
        app.router.add_post("/v1/turn_end", turn_end)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        detector = TranscriptTurnDetector(base_url=f"http://127.0.0.1:{port}/v1", api_key="key")
        session = utils.EventEmitter()
        detector.prime_after_replies(session)
        for role, text in [("assistant", GREETING), ("user", "are you open"), ("assistant", "Yes, until five.")]:
            session.emit("conversation_item_added", ConversationItemAddedEvent(
                item=ChatMessage(role=role, content=[text])))
        for _ in range(100):
            if len(asked) == 2:
                break
            await asyncio.sleep(0.02)
        await detector.aclose()
        await runner.cleanup()
        return asked
    asked = asyncio.run(run())
    assert asked == [("Bearer key", {"said": "", "last_reply": GREETING}),
                     ("Bearer key", {"said": "", "last_reply": "Yes, until five."})]
