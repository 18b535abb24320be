"""Every setting in one typed object: each `.env` key, its default, and the values it allows.

Where a value comes from (the one rule):

1. the process environment, then
2. the `.env` file (PHONE_ENV_FILE names it; default: `.env` at the repository root), then
3. the default defined here.

The first of these that has a key decides. An empty value counts as not set, so the default applies; `KEY=` in the
environment therefore also hides a value in `.env` (`make eval` clears a `.env`'s business keys that way).
PHONE_ENV_FILE and PHONE_RUN_DIR (default `.run`) come from the process environment only: they say where the rest is.
Keys in `.env` that are no setting here still reach the processes the stack starts.

A bad value stops the program with one line naming the key, where it was set, and what is allowed (SettingsError).
`.env.example` documents every key with its default; tests/test_settings.py keeps the two in step.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from dotenv import dotenv_values
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
ANY_ADDRESS = "0.0.0.0"
E164 = re.compile(r"^\+?[1-9]\d{2,14}$")


class SettingsError(ValueError):
    """A setting with a value it does not allow; the message is one line."""


@dataclass(frozen=True)
class Allowed:
    """What a setting accepts, in words: the end of the one line a bad value gets."""
    text: str


# --- value types, each with the words that say what it allows --------------------------------------------------------
def _port_range(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        start, _, end = value.partition("-")
        value = (int(start), int(end or start))
    start, end = value
    if not 1 <= start <= end <= 65535:
        raise ValueError("not a port range")
    return start, end


def _comma_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(value)


def _e164_numbers(numbers: tuple[str, ...]) -> tuple[str, ...]:
    if not all(E164.match(number) for number in numbers):
        raise ValueError("not an E.164 number")
    return numbers


def _networks(addresses: tuple[str, ...]) -> tuple[str, ...]:
    for address in addresses:
        ipaddress.ip_network(address, strict=False)  # ValueError if it is none
    return addresses


def _host_names(names: tuple[str, ...]) -> tuple[str, ...]:
    if not all(re.fullmatch(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]", name) for name in names):
        raise ValueError("not a host name")
    return tuple(name.lower() for name in names)


def _url(*schemes: str):
    def check(url: str) -> str:
        parsed = urlparse(url)
        if url and (parsed.scheme not in schemes or not parsed.hostname):
            raise ValueError("not a URL")
        return url
    return AfterValidator(check)


TransferMode = Literal["auto", "warm", "cold"]


def _host_port(text: str) -> str:
    text = text.strip()
    if text and not re.fullmatch(r"[A-Za-z0-9.-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?", text):
        raise ValueError("not host or host:port")
    return text


def _e164_or_empty(text: str) -> str:
    text = text.strip()
    if text and not E164.match(text):
        raise ValueError("not an E.164 number")
    return text


def _strip(text: str) -> str:
    return text.strip()


DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "sqlite")


def _database_url(url: str) -> str:
    if url and urlparse(url).scheme not in DATABASE_SCHEMES:
        raise ValueError("not a database URL")
    return url


Port = Annotated[int, Field(ge=1, le=65535), Allowed("a port number 1-65535")]
PortRange = Annotated[tuple[int, int], NoDecode, BeforeValidator(_port_range),
                      PlainSerializer(lambda ports: f"{ports[0]}-{ports[1]}"),
                      Allowed("a port range like 10000-10100 (first-last, 1-65535)")]
Numbers = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list), AfterValidator(_e164_numbers),
                    PlainSerializer(",".join), Allowed("comma-separated E.164 phone numbers, like +15550100")]
Networks = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list), AfterValidator(_networks),
                     PlainSerializer(",".join), Allowed("comma-separated IP addresses or CIDRs, like 203.0.113.0/24")]
OptionalPath = Annotated[Path | None, Allowed("a file or folder path")]
IPv4 = Annotated[str, AfterValidator(lambda text: str(ipaddress.IPv4Address(text)) if text else text),
                 Allowed("an IPv4 address, like 203.0.113.10")]
Flag = Annotated[bool, PlainSerializer(lambda flag: "true" if flag else "false"), Allowed("true or false")]
Seconds = Annotated[int, Field(ge=0), Allowed("a whole number of seconds, 0 or more")]


def setting(default: Any, key: str | None = None, **checks: Any) -> Any:
    """A field whose `.env` key is its name in capitals, or `key`."""
    return Field(default, validation_alias=key, **checks)


class Settings(BaseSettings):
    """Read with Settings.load(); in tests Settings.of(KEY=value, ...). Grouped as in `.env.example`."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False, validate_by_name=True)

    # --- LiveKit server (LIVEKIT_PORT first: the default LIVEKIT_URL is built from it) --------------------------------
    livekit_port: Port = 7880
    # Unset, or ws://127.0.0.1:<port>: the bundled local server. Any other host (LiveKit Cloud): that server.
    livekit_url: Annotated[str, _url("ws", "wss", "http", "https"), Allowed("a ws:// or wss:// URL")] = setting(
        "", validate_default=True)
    api_key: str = setting("", "LIVEKIT_API_KEY")
    api_secret: str = setting("", "LIVEKIT_API_SECRET")

    # --- Local stack ports (all bound to 127.0.0.1) -------------------------------------------------------------------
    # 0: no ICE-over-TCP. Its listener binds every address (pion's TCP mux), so it stays off unless asked for.
    rtc_tcp_port: Annotated[int, Field(ge=0, le=65535), Allowed("a port number 1-65535, or 0 for off")] = setting(
        0, "LIVEKIT_RTC_TCP_PORT")
    rtc_udp_ports: PortRange = setting((50000, 50100), "LIVEKIT_RTC_UDP_PORTS")
    redis_port: Port = 6390
    sip_port: Port = 5060
    sip_rtp_ports: PortRange = (10000, 10100)
    sip_health_port: Port = 8080
    agent_http_port: Port = 8081
    local_openai_port: Port = 8000
    playground_port: Port = 8090
    rtc_ips: Networks = setting((f"{LOOPBACK}/32",), "LIVEKIT_RTC_IPS")
    sip_log_level: Annotated[Literal["debug", "info", "warn", "error"],
                             Allowed("one of debug, info, warn, error")] = "info"
    # The LiveKit URL the playground page hands to browsers; empty: LIVEKIT_URL.
    playground_livekit_url: Annotated[str, _url("ws", "wss"), Allowed("a ws:// or wss:// URL")] = ""
    stack_bin_dir: OptionalPath = None  # default .cache/bin
    log_max_mb: Annotated[int, Field(ge=1, le=10000), Allowed("a whole number of megabytes, 1 or more")] = 20
    log_backups: Annotated[int, Field(ge=0, le=99), Allowed("a whole number, 0 to 99")] = 3

    # --- The playground page (playground/) ------------------------------------------------------------------------
    playground_max_sessions: Annotated[int, Field(ge=0, le=1000), Allowed("a whole number, 0 or more")] = 1
    playground_sessions_per_minute: Annotated[int, Field(ge=1, le=10000), Allowed("a whole number, 1 or more")] = 6
    playground_allowed_hosts: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list),
                                        AfterValidator(_host_names), PlainSerializer(",".join),
                                        Allowed("comma-separated host names, like phone.example.com")] = ()
    # The Calls page (call records, transcripts, recordings) asks for it (HTTP basic auth, any user name) when set;
    # unset, it answers on 127.0.0.1 only, and the playground refuses to listen on another address.
    playground_password: str = ""

    # --- SIP provisioning (`cli.py sip setup`) ------------------------------------------------------------------------
    sip_numbers: Numbers = setting(("+15550100",), min_length=1)
    sip_allowed_addresses: Networks = ()
    sip_allowed_numbers: Numbers = ()
    sip_auth_username: str = ""
    sip_auth_password: str = ""
    sip_room_prefix: str = "call-"
    # SRTP on the trunk's calls: disable (plain RTP), allow (SRTP when the carrier offers it) or require.
    sip_media_encryption: Annotated[Literal["disable", "allow", "require"],
                                    Allowed("one of disable, allow, require")] = "disable"
    # Where SIP is reachable from other hosts, `sip setup` refuses a trunk with neither auth nor allowed addresses
    # unless this is true (`--allow-open-trunk`).
    sip_allow_open_trunk: Flag = False
    # `sip setup --carrier`: that carrier's signalling addresses as allowed addresses, its side's settings printed.
    sip_carrier: Annotated[Literal["", "twilio", "telnyx", "generic"],
                           Allowed("one of twilio, telnyx, generic, or empty")] = ""
    # Call limits on the trunk, in seconds (0: livekit-sip's own, 24 h and 3 min).
    sip_max_call_duration: Seconds = 1800
    sip_ringing_timeout: Seconds = 60

    # --- Outbound calls (`cli.py dial`): `sip setup` provisions an outbound trunk when SIP_OUTBOUND_ADDRESS is set ----
    sip_outbound_address: Annotated[str, AfterValidator(_host_port),
                                    Allowed("host or host:port, like sip.example.com:5060")] = ""
    sip_outbound_transport: Annotated[Literal["auto", "udp", "tcp", "tls"],
                                      Allowed("one of auto, udp, tcp, tls")] = "auto"
    sip_outbound_username: str = ""
    sip_outbound_password: str = ""
    # The caller ID of outbound calls; empty: the first of SIP_NUMBERS.
    sip_outbound_number: Annotated[str, AfterValidator(_e164_or_empty),
                                   Allowed("an E.164 phone number, like +15550100, or empty")] = ""
    # Seconds an outbound call rings before it counts as not answered.
    sip_outbound_ringing_timeout: Annotated[int, Field(ge=5, le=300),
                                            Allowed("a whole number of seconds, 5 to 300")] = 30

    # --- The phone line: where a carrier reaches livekit-sip (stack/phone_line.py, docs/deploy.md) -------------------
    # The address livekit-sip listens on for SIP: 127.0.0.1 (local calls only), this machine's address facing the
    # carrier, or 0.0.0.0 (then SIP_PUBLIC_IP is needed). Everything else stays on 127.0.0.1 whatever is set here.
    sip_listen_ip: IPv4 = LOOPBACK
    # The address advertised in SIP and SDP (livekit-sip's nat_1_to_1_ip), for a host behind 1:1 NAT; empty: the
    # listen address.
    sip_public_ip: IPv4 = ""
    sip_tls_port: Port = 5061
    # SIP over TLS: on when both PEM files are set.
    sip_tls_cert: str = ""
    sip_tls_key: str = ""
    # The DNS name the certificate is for: carriers dial sip:<name>:5061;transport=tls (livekit-sip's sip_hostname).
    sip_hostname: str = ""
    # Drop INVITEs that fail auth or match no trunk without any answer (livekit-sip's hide_inbound_port); unset: on
    # when SIP listens on a non-loopback address.
    sip_hide_inbound_port: Annotated[bool | None, Allowed("true or false, or empty")] = None

    # --- Agent --------------------------------------------------------------------------------------------------------
    agent_name: str = "phone-assistant"
    # Conversations at once. 1: on the reference machine (2 cores, local models, docs/benchmarks.md) even one call
    # misses the ~3 s voice-to-voice p95 goal, and each call more makes every call slower (docs/deploy.md: raising it).
    agent_max_calls: Annotated[int, Field(ge=1), Allowed("a whole number, 1 or more")] = 1
    # Seconds of silence on both sides before "Are you still there?"; as long again and the call ends (0: never).
    agent_silence_timeout: Seconds = 20
    # Calls at once from one caller number; more are told so and let go (0: no limit).
    agent_max_calls_per_caller: Annotated[int, Field(ge=0), Allowed("a whole number, 0 or more")] = 2
    agent_max_chat_chars: Annotated[int, Field(ge=1, le=100000), Allowed("a whole number, 1 or more")] = 500

    # --- The call store (calls/): every call, its turns, and optionally its audio -----------------------------------
    # Empty: the SQLite file <run dir>/calls.sqlite3. postgresql://user:password@host:port/db: that PostgreSQL server.
    database_url: Annotated[str, AfterValidator(_strip), AfterValidator(_database_url),
                            Allowed("a postgresql://user:password@host/db or sqlite:///path URL, or empty")] = ""
    # Record each call's audio (caller and assistant on separate channels) into <run dir>/recordings/. Off by
    # default: callers must be told they are recorded where the law asks for it (README, "Call records").
    record_calls: Flag = False
    # Recordings older than this many days are deleted (0: kept until deleted by hand).
    record_retention_days: Annotated[int, Field(ge=0, le=36500), Allowed("a whole number of days, 0 or more")] = 30

    # --- The business (agent/business.py: a key set here wins over the same key in the BUSINESS_CONFIG file) ---------
    business_name: str = "Example Company"
    business_hours: str = "Monday to Friday, 9 am to 5 pm"
    opening_hours: str = ""
    business_country: str = ""
    business_timezone: str = "UTC"
    business_facts: str = ""
    transfer_number: str = ""
    # How a caller is put through to TRANSFER_NUMBER: warm (on hold while a colleague is dialled through the outbound
    # trunk and briefed, agent/warm_transfer.py), cold (a SIP REFER), or auto (warm when `sip setup` made an
    # outbound trunk, else cold).
    transfer_mode: Annotated[TransferMode, Allowed("one of auto, warm, cold")] = "auto"
    agent_language: str = "en"
    greeting: str = ""
    farewell: str = ""
    # Phone keypad shortcuts, key=action: person (a colleague, or a message without one), message, hours, repeat.
    keypad: str = "0=person, 9=hours"
    business_config: OptionalPath = None

    # --- AI providers -------------------------------------------------------------------------------------------------
    openai_api_key: Annotated[str, AfterValidator(_strip)] = ""
    openai_base_url: Annotated[str, AfterValidator(_strip), _url("http", "https"),
                               Allowed("an http:// or https:// URL")] = ""
    openai_stt_model: str = "gpt-4o-mini-transcribe"
    openai_llm_model: str = "gpt-4o-mini"
    openai_llm_temperature: Annotated[float, Field(ge=0, le=2), Allowed("a number from 0 to 2")] = 0.3
    openai_tts_model: str = "gpt-4o-mini-tts"
    openai_tts_voice: str = "alloy"

    # --- Local offline models -----------------------------------------------------------------------------------------
    # Chosen by measurement on a 2-core CPU (docs/benchmarks.md): the 0.5B model halves voice-to-voice delay
    # (p50 3.6 s vs 5.8 s, p95 5.3 s vs 15 s) and passes the same evals; the 1.5B is one setting away.
    local_llm_model: str = "qwen2.5-coder-0.5b"
    local_stt_model: str = "tiny.en"
    local_tts_voice: str = "en_US-joe-medium"
    model_cache_dir: OptionalPath = None  # default .cache/models
    local_openai_max_upload_mb: Annotated[int, Field(ge=1), Allowed("a whole number of megabytes, 1 or more")] = 25
    # The key the endpoint wants as `Authorization: Bearer ...`; `cli.py up` generates it into .env (mode 600).
    local_openai_api_key: Annotated[str, AfterValidator(_strip)] = ""
    local_openai_max_audio_s: Annotated[int, Field(ge=1, le=3600),
                                        Allowed("a whole number of seconds, 1 to 3600")] = 120
    local_openai_max_queue: Annotated[int, Field(ge=1, le=1000), Allowed("a whole number, 1 to 1000")] = 8

    # --- After each call (calls/aftercall.py) ------------------------------------------------------------------------
    # Where the end-of-call webhook POSTs each call's record and transcript; empty: none is sent.
    call_webhook_url: Annotated[str, AfterValidator(_strip), _url("http", "https"),
                                Allowed("an http:// or https:// URL")] = ""
    # The HMAC-SHA256 key the webhook is signed with; `python cli.py up` generates one here (mode 600) when empty.
    call_webhook_secret: Annotated[str, AfterValidator(_strip)] = ""
    # Tries per webhook before it is marked failed; the waits between them double from 4 s (5 tries: about 1 min).
    call_webhook_attempts: Annotated[int, Field(ge=1, le=20), Allowed("a whole number, 1 to 20")] = 5
    # A short summary and outcome of each call, written by the LLM after hang-up.
    call_summaries: Flag = True

    @field_validator("livekit_url")
    @classmethod
    def _local_server_by_default(cls, url: str, info: ValidationInfo) -> str:
        port = info.data.get("livekit_port")
        return url or (f"ws://{LOOPBACK}:{port}" if port else url)

    _env_file: Path | None = PrivateAttr(None)
    _run_dir: Path = PrivateAttr(REPO_ROOT / ".run")
    _environ: dict[str, str] = PrivateAttr(default_factory=dict)
    _file_values: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings,)  # load() layers the environment over .env itself (_LayeredSource): one rule, one place

    # --- loading ------------------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, env_file: Path | str | None = None, run_dir: Path | str | None = None, *,
             environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from the environment (default os.environ) and the .env file; SettingsError on a bad value."""
        environ = dict(os.environ if environ is None else environ)
        env_file = Path(env_file or environ.get("PHONE_ENV_FILE") or REPO_ROOT / ".env").expanduser().resolve()
        run_dir = Path(run_dir or environ.get("PHONE_RUN_DIR") or REPO_ROOT / ".run").expanduser().resolve()
        in_file = {key: value for key, value in dotenv_values(env_file).items() if value is not None} \
            if env_file.is_file() else {}
        return cls._layered(environ, in_file, env_file, run_dir)

    @classmethod
    def of(cls, **environ: str) -> Settings:
        """Settings from these keys alone, as if they were the whole environment and there were no .env (tests)."""
        return cls._layered(environ, {}, None, REPO_ROOT / ".run")

    @classmethod
    def _layered(cls, environ: dict[str, str], in_file: dict[str, str], env_file: Path | None,
                 run_dir: Path) -> Settings:
        layered = {**in_file, **environ}
        try:
            settings = cls(**_LayeredSource(cls, layered)())
        except ValidationError as error:
            raise SettingsError(cls._one_line(error, layered, environ, env_file)) from None
        settings._env_file, settings._run_dir = env_file, run_dir
        settings._environ, settings._file_values = environ, in_file
        return settings

    @classmethod
    def _one_line(cls, error: ValidationError, layered: Mapping[str, str], environ: Mapping[str, str],
                  env_file: Path | None) -> str:
        """`REDIS_PORT=abc in /srv/phone/.env is not valid: a port number 1-65535`, one such part per bad key."""
        problems = []
        for item in error.errors():
            name = cls._field_named(str(item["loc"][0])) if item["loc"] else None
            if name is None:
                problems.append(item["msg"])
                continue
            key = cls.env_key(name)
            value = next((v for k, v in layered.items() if k.upper() == key), item["input"])
            where = "the environment" if environ.get(key) or env_file is None else str(env_file)
            allowed = next((m.text for m in cls.model_fields[name].metadata if isinstance(m, Allowed)), item["msg"])
            problems.append(f"{key}={value} in {where} is not valid: {allowed}")
        return "; ".join(problems)

    @classmethod
    def _field_named(cls, alias_or_name: str) -> str | None:
        for name, field in cls.model_fields.items():
            if alias_or_name in (name, field.validation_alias):
                return name
        return None

    @classmethod
    def env_key(cls, name: str) -> str:
        """The .env key of a field: LIVEKIT_API_KEY for api_key, REDIS_PORT for redis_port."""
        alias = cls.model_fields[name].validation_alias
        return alias if isinstance(alias, str) else name.upper()

    @classmethod
    def default(cls, name: str) -> Any:
        """A field's default: the one definition other modules take theirs from."""
        return cls.model_fields[name].default

    # --- where things are ---------------------------------------------------------------------------------------------
    @property
    def env_file(self) -> Path:
        return self._env_file or REPO_ROOT / ".env"

    @property
    def run_dir(self) -> Path:
        return self._run_dir

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def recordings_dir(self) -> Path:
        """Where call recordings are kept (RECORD_CALLS)."""
        return self.run_dir / "recordings"

    @property
    def bin_dir(self) -> Path:
        """Where livekit-server and livekit-sip are built once."""
        return self.stack_bin_dir or REPO_ROOT / ".cache" / "bin"

    @property
    def models_dir(self) -> Path:
        """Where the chunked LLM is assembled and verified once, and other model files are cached."""
        return self.model_cache_dir or REPO_ROOT / ".cache" / "models"

    # --- what runs where ----------------------------------------------------------------------------------------------
    @property
    def sip_exposed(self) -> bool:
        """Whether livekit-sip listens beyond this machine (a carrier can reach it): any non-loopback address."""
        return not ipaddress.ip_address(self.sip_listen_ip).is_loopback

    @property
    def sip_advertised_ip(self) -> str:
        """The address carriers are told to send SIP and RTP to (nat_1_to_1_ip)."""
        return self.sip_public_ip or self.sip_listen_ip

    @property
    def sip_tls(self) -> bool:
        return bool(self.sip_tls_cert or self.sip_tls_key)

    @property
    def sip_hides_inbound_port(self) -> bool:
        return self.sip_exposed if self.sip_hide_inbound_port is None else self.sip_hide_inbound_port

    @property
    def uses_remote_livekit(self) -> bool:
        """True when LIVEKIT_URL names another server (LiveKit Cloud, say): then we run no local LiveKit."""
        host = urlparse(self.livekit_url).hostname or ""
        return host not in (LOOPBACK, "localhost", "::1")

    @property
    def ai_provider(self) -> Literal["openai", "openai-compatible", "local"]:
        """The one decision between OpenAI, another OpenAI-compatible server, and the local offline endpoint."""
        if self.openai_base_url:
            return "openai-compatible"
        return "openai" if self.openai_api_key else "local"

    @property
    def uses_local_ai(self) -> bool:
        """The offline endpoint runs when no OpenAI key and no other OpenAI-compatible server is configured."""
        return self.ai_provider == "local"

    @property
    def ai_base_url(self) -> str | None:
        """The providers' base URL; None: OpenAI's own."""
        return {"openai": None, "openai-compatible": self.openai_base_url, "local": self.local_openai_url}[
            self.ai_provider]

    @property
    def livekit_http_url(self) -> str:
        return self.livekit_url.replace("wss://", "https://").replace("ws://", "http://")

    @property
    def local_openai_url(self) -> str:
        return f"http://{LOOPBACK}:{self.local_openai_port}/v1"

    @property
    def redis_address(self) -> str:
        return f"{LOOPBACK}:{self.redis_port}"

    # --- changing and passing on --------------------------------------------------------------------------------------
    def with_credentials(self, api_key: str, api_secret: str) -> Settings:
        return self._copy(api_key=api_key, api_secret=api_secret)

    def with_generated(self, field: str, value: str) -> Settings:
        """With a key or secret just generated into `.env` (stack/credentials.py)."""
        return self._copy(**{field: value})

    def _copy(self, **changes: Any) -> Settings:
        copy = self.model_copy(update=changes)
        copy._env_file, copy._run_dir = self._env_file, self._run_dir
        copy._environ, copy._file_values = self._environ, self._file_values
        return copy

    def set_values(self, names: tuple[str, ...] | list[str]) -> dict[str, Any]:
        """The fields among `names` that were set (in the environment, .env or here), not left at their default."""
        return {name: getattr(self, name) for name in names if name in self.model_fields_set}

    def env_values(self) -> dict[str, str]:
        """Every setting as its .env key and text (defaults included)."""
        return {self.env_key(name): _text(value) for name, value in self.model_dump(mode="json").items()}

    def env_for_processes(self) -> dict[str, str]:
        """The environment every process we start gets: ours as it was at load(), the .env keys it does not set, and
        the settings set there or here, in their checked form. The process reads the same .env (PHONE_ENV_FILE), so
        it sees what we see. (A change to os.environ after load() needs a fresh load().)"""
        env = dict(self._environ)
        env.update({key: value for key, value in self._file_values.items() if key not in env and value})
        texts = self.env_values()
        env.update({self.env_key(name): texts[self.env_key(name)] for name in self.model_fields_set})
        env.update(LIVEKIT_URL=self.livekit_url, PHONE_RUN_DIR=str(self.run_dir),
                   HF_HUB_OFFLINE="1",  # huggingface_hub reads it: never fetch model weights at run time
                   PYTHONUNBUFFERED="1")
        if self._env_file:
            env["PHONE_ENV_FILE"] = str(self._env_file)
        return env


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class _LayeredSource(EnvSettingsSource):
    """pydantic-settings' environment source, over the environment laid on the .env file's values (Settings.load)."""

    def __init__(self, settings_cls: type[BaseSettings], layered: Mapping[str, str]) -> None:
        # Lower-case keys: the source matches names case-insensitively. Empty values are dropped: "not set".
        self._layered = {key.lower(): value for key, value in layered.items() if value != ""}
        super().__init__(settings_cls, case_sensitive=False, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._layered


def settings_for_port_block(base: int, **extra: str) -> dict[str, str]:
    """Environment values that put a whole stack on its own block of ports (tests use this)."""
    return {
        "REDIS_PORT": str(base),
        "LIVEKIT_PORT": str(base + 1),
        "LIVEKIT_URL": f"ws://{LOOPBACK}:{base + 1}",
        "SIP_PORT": str(base + 3),
        "SIP_HEALTH_PORT": str(base + 4),
        "AGENT_HTTP_PORT": str(base + 5),
        "LOCAL_OPENAI_PORT": str(base + 6),
        "PLAYGROUND_PORT": str(base + 7),
        "LIVEKIT_RTC_UDP_PORTS": f"{base + 100}-{base + 149}",
        "SIP_RTP_PORTS": f"{base + 200}-{base + 249}",
        **extra,
    }
