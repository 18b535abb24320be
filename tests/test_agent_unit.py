"""Logic of the agent that needs no model: provider choice, business profile, call control."""

import itertools
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from livekit.agents import llm

from agent.business import BusinessProfile
from agent.providers import choose_providers
from agent.small_model import MAX_ITEMS, recent_window
from stack.settings import Settings
from tests.support.provider import RejectingProvider

pytestmark = pytest.mark.unit


def test_no_key_uses_the_local_endpoint_with_its_own_key():
    choice = choose_providers(Settings.of(LOCAL_OPENAI_PORT="8123", LOCAL_OPENAI_API_KEY="local-abc"))
    assert choice.name == "local"
    assert choice.base_url == "http://127.0.0.1:8123/v1"
    assert choice.api_key == "local-abc" and choice.llm_model == "gpt-4o-mini"
    # The local key goes only to the local endpoint, never to another provider.
    other = choose_providers(Settings.of(LOCAL_OPENAI_API_KEY="local-abc", OPENAI_BASE_URL="http://gpu-box:8000/v1"))
    assert other.api_key != "local-abc"


def test_a_key_uses_openai_with_configured_models():
    choice = choose_providers(Settings.of(OPENAI_API_KEY="sk-test", OPENAI_LLM_MODEL="gpt-4.1-mini",
                                          OPENAI_TTS_VOICE="nova"))
    assert (choice.name, choice.base_url, choice.api_key) == ("openai", None, "sk-test")
    assert choice.llm_model == "gpt-4.1-mini" and choice.tts_voice == "nova"
    assert "api.openai.com" in choice.describe()


@pytest.mark.parametrize("env", [{"OPENAI_BASE_URL": "http://gpu-box:8000/v1"},
                                 {"OPENAI_BASE_URL": "http://gpu-box:8000/v1", "OPENAI_API_KEY": "sk-x"}])
def test_base_url_points_the_same_plugins_anywhere(env):
    choice = choose_providers(Settings.of(**env))
    assert choice.name == "openai-compatible" and choice.base_url == "http://gpu-box:8000/v1"


def test_llm_temperature_is_configurable_and_checked():
    assert choose_providers(Settings.of()).llm_temperature == 0.3
    assert choose_providers(Settings.of(OPENAI_LLM_TEMPERATURE="0")).llm_temperature == 0
    with pytest.raises(ValueError,
                       match="OPENAI_LLM_TEMPERATURE=hot in the environment is not valid: a number from 0 to 2"):
        choose_providers(Settings.of(OPENAI_LLM_TEMPERATURE="hot"))


def test_business_profile_from_env_and_toml(tmp_path):
    config = tmp_path / "business.toml"
    config.write_text('business_name = "Harbor Dental"\ntransfer_number = "+15550199"\n')
    profile = BusinessProfile.load(Settings.of(BUSINESS_CONFIG=str(config), BUSINESS_HOURS="Mon-Fri 9-5"))
    assert profile.business_name == "Harbor Dental" and profile.transfer_number == "+15550199"
    assert profile.business_hours == "Mon-Fri 9-5"
    assert "Harbor Dental" in profile.greeting_text


def test_the_greeting_names_the_business_unless_the_business_wrote_its_own(tmp_path):
    """An empty greeting in the file (as in the bakery profile) is no greeting: the caller hears the default, which
    names the business. A greeting the business wrote is said as written, and GREETING in the environment wins."""
    bakery = BusinessProfile.load(Settings.of(BUSINESS_CONFIG=str(Path(__file__).parent / "data" / "bakery.toml")))
    assert bakery.greeting == "" and bakery.greeting_text.startswith("Thanks for calling Lakeside Bakery.")
    config = tmp_path / "business.toml"
    config.write_text('business_name = "Harbor Dental"\ngreeting = "Harbor Dental, Ana speaking."\n')
    own = BusinessProfile.load(Settings.of(BUSINESS_CONFIG=str(config)))
    assert own.greeting_text == "Harbor Dental, Ana speaking."
    assert BusinessProfile.load(Settings.of(BUSINESS_CONFIG=str(config), GREETING="Hello!")).greeting_text == "Hello!"


@pytest.mark.parametrize("now, sentence", [
    (datetime(2026, 11, 25, 10, 30), "We're open now, until 5 PM."),  # a Wednesday
    (datetime(2026, 11, 25, 1, 14), "We're closed right now; we open again today at 9 AM."),
    (datetime(2026, 11, 27, 18, 0), "We're closed right now; we open again Saturday at 10 AM."),
    (datetime(2026, 11, 28, 12, 0), "We're open now, until 1:30 PM."),
])
def test_open_state_from_opening_hours(now, sentence):
    profile = BusinessProfile(opening_hours="Mo-Fr 09:00-17:00; Sa 10:00-13:30")
    assert profile.open_state(now.replace(tzinfo=ZoneInfo("America/New_York"))) == sentence


def test_open_state_is_silent_without_opening_hours():
    assert BusinessProfile().open_state(datetime(2026, 11, 25, 10, 30)) == ""


def test_malformed_opening_hours_fail_at_load_with_an_example():
    with pytest.raises(ValueError, match=r"OPENING_HOURS=.*Mo-Fr 09:00-17:00"):
        BusinessProfile.load(Settings.of(OPENING_HOURS="weekdays nine to five"))


def test_missing_business_config_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="BUSINESS_CONFIG"):
        BusinessProfile.load(Settings.of(BUSINESS_CONFIG=str(tmp_path / "nope.toml")))


def test_a_wrong_key_is_one_clear_line():
    from agent.providers import check_credentials

    with RejectingProvider() as base_url:
        problem = check_credentials(choose_providers(Settings.of(OPENAI_API_KEY="sk-wrong", OPENAI_BASE_URL=base_url)))
    assert "rejected OPENAI_API_KEY (HTTP 401)" in problem and "\n" not in problem


def test_an_unreachable_provider_is_one_clear_line():
    from agent.providers import check_credentials

    problem = check_credentials(choose_providers(Settings.of(OPENAI_BASE_URL="http://127.0.0.1:1/v1")), timeout=2)
    assert "cannot reach the AI provider" in problem and "OPENAI_BASE_URL" in problem


def conversation(turns: int) -> llm.ChatContext:
    chat = llm.ChatContext()
    chat.add_message(role="system", content="You are the receptionist.")
    for turn in range(turns):
        chat.add_message(role="user", content=f"question {turn}")
        if turn % 3 == 0:  # a tool call and its result within some turns
            chat.items.append(llm.FunctionCall(call_id=f"c{turn}", name="get_current_time", arguments="{}"))
            chat.items.append(llm.FunctionCallOutput(call_id=f"c{turn}", name="get_current_time", output="noon",
                                                     is_error=False))
        chat.add_message(role="assistant", content=f"answer {turn}")
    return chat


def test_a_short_call_keeps_its_whole_conversation():
    chat = conversation(5)
    assert recent_window(chat).items == chat.items


def test_a_long_call_keeps_the_instructions_and_a_bounded_recent_window():
    for turns in range(10, 60):
        chat = conversation(turns)
        window = recent_window(chat).items
        assert window[0].role == "system"
        assert len(window) - 1 <= MAX_ITEMS
        assert isinstance(window[1], llm.ChatMessage)  # never a tool result cut from its call
        assert window[-1] is chat.items[-1]
        calls = {i.call_id for i in window if isinstance(i, llm.FunctionCall)}
        assert all(i.call_id in calls for i in window if isinstance(i, llm.FunctionCallOutput))


def test_the_window_moves_in_steps_so_the_cached_prefix_survives_most_turns():
    whole = conversation(60).items
    starts = []
    for length in range(20, len(whole) + 1):  # the same call, one item longer each time
        window = recent_window(llm.ChatContext(whole[:length])).items
        starts.append(window[1].id)
    moves = sum(1 for before, after in itertools.pairwise(starts) if before != after)
    assert 0 < moves <= len(starts) // 10, moves
