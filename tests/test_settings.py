"""The one settings object (stack/settings.py): where each value comes from, one line for a bad value, and
`.env.example` in step with the fields."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

from stack.settings import REPO_ROOT, Settings, SettingsError

pytestmark = pytest.mark.unit
EXAMPLE = REPO_ROOT / ".env.example"


def write_env(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_env_example_documents_every_setting_with_its_default():
    documented = dotenv_values(EXAMPLE)
    keys = [line.split("=", 1)[0] for line in EXAMPLE.read_text().splitlines() if line and not line.startswith("#")]
    assert len(keys) == len(set(keys)), "a key is documented twice"
    fields = {Settings.env_key(name) for name in Settings.model_fields}
    assert set(documented) - fields == set(), "documented in .env.example, but no setting"
    assert fields - set(documented) == set(), "a setting .env.example does not document"
    defaults = Settings.of().env_values()
    wrong = {key: (value, defaults[key]) for key, value in documented.items() if (value or "") != defaults[key]}
    assert wrong == {}, "(.env.example, default) differ"


def test_environment_wins_over_env_file_which_wins_over_the_default(tmp_path):
    env_file = write_env(tmp_path / "my.env", "REDIS_PORT=6400\nSIP_PORT=5070\nBUSINESS_NAME=Foo Bakery\n"
                                              "GREETING=\nSOMETHING_ELSE=kept\n")
    settings = Settings.load(environ={"PHONE_ENV_FILE": str(env_file), "PHONE_RUN_DIR": str(tmp_path / "run"),
                                      "REDIS_PORT": "6500", "BUSINESS_NAME": ""})
    assert settings.env_file == env_file and settings.run_dir == tmp_path / "run"
    assert settings.redis_port == 6500  # the environment wins
    assert settings.sip_port == 5070  # .env wins over the default
    assert settings.agent_http_port == Settings.default("agent_http_port")
    # Empty means not set: the default applies, and an empty key in the environment hides the .env value.
    assert settings.greeting == "" and settings.business_name == Settings.default("business_name")
    assert settings.set_values(["business_name", "greeting", "redis_port"]) == {"redis_port": 6500}

    env = settings.env_for_processes()
    assert env["PHONE_ENV_FILE"] == str(env_file)  # the processes we start read the same file ...
    assert env["SOMETHING_ELSE"] == "kept"  # ... and get the .env keys that are no setting of ours
    assert env["REDIS_PORT"] == "6500" and env["SIP_PORT"] == "5070" and env["BUSINESS_NAME"] == ""
    child = Settings.load(environ=env)
    assert (child.redis_port, child.sip_port, child.business_name) == (6500, 5070, settings.business_name)


def test_defaults_are_defined_once():
    settings = Settings.of()
    assert settings.livekit_url == "ws://127.0.0.1:7880" and not settings.uses_remote_livekit
    assert Settings.of(LIVEKIT_PORT="7999").livekit_url == "ws://127.0.0.1:7999"
    assert settings.sip_numbers == ("+15550100",) and settings.agent_name == "phone-assistant"


def test_the_provider_is_decided_in_one_place():
    assert Settings.of().ai_provider == "local" and Settings.of().uses_local_ai
    assert Settings.of().ai_base_url == "http://127.0.0.1:8000/v1"
    assert Settings.of(OPENAI_API_KEY=" sk-x ").ai_provider == "openai"
    assert Settings.of(OPENAI_API_KEY="sk-x").ai_base_url is None
    other = Settings.of(OPENAI_BASE_URL="http://gpu-box:8000/v1")
    assert other.ai_provider == "openai-compatible" and not other.uses_local_ai
    assert other.ai_base_url == "http://gpu-box:8000/v1"


def test_lists_and_ranges_read_as_written():
    settings = Settings.of(SIP_NUMBERS="+15550101, +15550102", LIVEKIT_RTC_UDP_PORTS="40000-40010",
                           SIP_ALLOWED_ADDRESSES="203.0.113.0/24,198.51.100.7")
    assert settings.sip_numbers == ("+15550101", "+15550102")
    assert settings.rtc_udp_ports == (40000, 40010)
    assert settings.sip_allowed_addresses == ("203.0.113.0/24", "198.51.100.7")
    assert settings.env_values()["SIP_NUMBERS"] == "+15550101,+15550102"
    assert settings.env_values()["LIVEKIT_RTC_UDP_PORTS"] == "40000-40010"


@pytest.mark.parametrize("key, value, allowed", [
    ("REDIS_PORT", "abc", "a port number 1-65535"),
    ("SIP_PORT", "70000", "a port number 1-65535"),
    ("SIP_RTP_PORTS", "10100-10000", "a port range like 10000-10100 (first-last, 1-65535)"),
    ("SIP_NUMBERS", "12", "comma-separated E.164 phone numbers, like +15550100"),
    ("SIP_ALLOWED_ADDRESSES", "not-an-ip", "comma-separated IP addresses or CIDRs, like 203.0.113.0/24"),
    ("SIP_LOG_LEVEL", "loud", "one of debug, info, warn, error"),
    ("AGENT_MAX_CALLS", "0", "a whole number, 1 or more"),
    ("OPENAI_LLM_TEMPERATURE", "hot", "a number from 0 to 2"),
    ("LIVEKIT_URL", "example.com", "a ws:// or wss:// URL"),
])
def test_a_bad_value_is_one_line_naming_the_key_and_what_is_allowed(tmp_path, key, value, allowed):
    env_file = write_env(tmp_path / ".env", f"{key}={value}\n")
    with pytest.raises(SettingsError) as error:
        Settings.load(env_file, environ={})
    assert str(error.value) == f"{key}={value} in {env_file} is not valid: {allowed}"
    with pytest.raises(SettingsError, match=f"^{key}=.* in the environment is not valid"):
        Settings.load(env_file, environ={key: value})


@pytest.mark.parametrize("program", [["cli.py", "status"], ["main.py", "start"]])
def test_cli_and_agent_stop_on_a_bad_value_with_one_line_and_status_2(tmp_path, program):
    env_file = write_env(tmp_path / ".env", "REDIS_PORT=abc\n")
    result = subprocess.run([sys.executable, str(REPO_ROOT / program[0]), *program[1:]], cwd=REPO_ROOT,
                            env={"PATH": "/usr/bin:/bin", "PHONE_ENV_FILE": str(env_file), "HF_HUB_OFFLINE": "1"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"error: REDIS_PORT=abc in {env_file} is not valid: a port number 1-65535"
