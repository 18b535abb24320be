"""Text-mode evals of the phone assistant against the real local LLM (through the local endpoint).

Written as LiveKit's agent-starter evals: `session.run(user_input=...)` and RunResult assertions.
"""

from __future__ import annotations

import re

import pytest
from livekit.agents import AgentSession, llm

from agent.assistant import NOT_ENDED, PhoneAssistant
from agent.business import BusinessProfile
from agent.providers import build_plugins, choose_providers, session_connect_options

pytestmark = pytest.mark.models
PROFILE = BusinessProfile(
    business_name="Harbor Dental", business_hours="Monday to Friday, 9 am to 5 pm", opening_hours="Mo-Fr 09:00-17:00",
    business_timezone="America/New_York", transfer_number="+15550199",
    business_facts="A cleaning costs 90 dollars; The office is at 12 Harbor Street",
)


@pytest.fixture
async def session(local_endpoint):
    port = local_endpoint.rsplit(":", 1)[1].split("/")[0]
    # Greedy decoding: the same answer every run, so a failure means the agent changed, not the dice.
    _, model, _ = build_plugins(choose_providers({"LOCAL_OPENAI_PORT": port, "OPENAI_LLM_TEMPERATURE": "0"}))
    async with model, AgentSession(llm=model, conn_options=session_connect_options()) as session:
        await session.start(PhoneAssistant(PROFILE, caller_number="+15557770001"))
        yield session


def function_calls(result) -> list[str]:
    return [e.item.name for e in result.events if isinstance(e.item, llm.FunctionCall)]


def spoken(result) -> str:
    return " ".join(e.item.text_content or "" for e in result.events
                    if isinstance(e.item, llm.ChatMessage) and e.item.role == "assistant")


def test_greeting_names_the_business():
    assert "Harbor Dental" in PROFILE.greeting_text
    assert BusinessProfile().greeting_text.startswith("Thanks for calling Example Company")


async def test_answers_a_hello_briefly_and_without_markdown(session):
    result = await session.run(user_input="Hello? Is this the dentist?")
    result.expect.next_event().is_message(role="assistant")
    text = spoken(result)
    assert text and len(text.split()) <= 45, text
    assert not re.search(r"[*#`_\[\]]|^\s*-\s", text), text


@pytest.mark.parametrize("words", ["Hello", "Hi there", "Hello, I need a cleaning."])
async def test_a_greeting_never_ends_the_call(session, words):
    """The 0.5B model calls end_call on a bare hello; the tool refuses, and the caller hears an answer."""
    result = await session.run(user_input=words)
    assert not any(isinstance(e.item, llm.FunctionCallOutput) and e.item.name == "end_call"
                   and e.item.output != NOT_ENDED for e in result.events), result.events
    assert spoken(result).strip() and NOT_ENDED not in spoken(result), result.events


async def test_goodbye_ends_the_call(session):
    result = await session.run(user_input="That's everything, thank you. Goodbye!")
    result.expect.contains_function_call(name="end_call")


async def test_hold_on_gets_words_and_keeps_the_call(session):
    result = await session.run(user_input="Can you hold on a second?")
    assert function_calls(result) == [], result.events
    assert spoken(result).strip(), result.events


async def test_asking_for_a_person_transfers_once(session):
    result = await session.run(user_input="I'd like to speak to a real person, please.")
    assert function_calls(result) == ["transfer_to_human"], result.events
    assert spoken(result).strip(), result.events


async def test_asking_whether_open_now_reads_the_clock(session):
    result = await session.run(user_input="Is the office open right now?")
    assert function_calls(result) == ["get_current_time"], result.events
    assert re.search(r"We're (open now|closed right now)", spoken(result)), result.events


async def test_opening_hours_use_the_configured_facts(session):
    result = await session.run(user_input="What are your opening hours?")
    text = spoken(result).lower()
    assert "friday" in text and ("9" in text or "nine" in text), text


async def test_a_keyed_openai_configuration_runs_the_same_code(local_endpoint):
    """With OPENAI_API_KEY set, the agent uses OpenAI's names and the key; pointed at our endpoint by base URL
    (OpenAI itself is out of reach here), the same plugins answer."""
    choice = choose_providers({"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": local_endpoint,
                               "OPENAI_LLM_TEMPERATURE": "0"})
    assert choice.api_key == "sk-test" and choice.llm_model == "gpt-4o-mini"
    _, model, _ = build_plugins(choice)
    async with model, AgentSession(llm=model, conn_options=session_connect_options()) as session:
        await session.start(PhoneAssistant(PROFILE))
        result = await session.run(user_input="How much does a cleaning cost?")
    assert "90" in spoken(result) or "ninety" in spoken(result).lower(), spoken(result)
