"""Where the local stack lives and which ports it uses, read from `.env` and the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

from dotenv import dotenv_values

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


def _port_range(text: str) -> tuple[int, int]:
    start, _, end = text.partition("-")
    return int(start), int(end or start)


@dataclass(frozen=True)
class StackSettings:
    env_file: Path
    run_dir: Path
    livekit_url: str = f"ws://{LOOPBACK}:7880"
    api_key: str = ""
    api_secret: str = ""
    redis_port: int = 6390
    livekit_port: int = 7880
    # 0: no ICE-over-TCP. Its listener binds every address (pion's TCP mux), so it stays off unless asked for.
    rtc_tcp_port: int = 0
    rtc_udp_ports: tuple[int, int] = (50000, 50100)
    sip_port: int = 5060
    sip_rtp_ports: tuple[int, int] = (10000, 10100)
    sip_health_port: int = 8080
    agent_http_port: int = 8081
    local_openai_port: int = 8000
    playground_port: int = 8090
    openai_api_key: str = ""
    openai_base_url: str = ""
    # Everything else from .env, passed through to the processes we start.
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, env_file: Path | None = None, run_dir: Path | None = None) -> StackSettings:
        """Values from the process environment win over `.env`, so tests and CI can override anything."""
        env_file = Path(env_file or REPO_ROOT / ".env").resolve()
        values = {k: v for k, v in dotenv_values(env_file).items() if v not in (None, "")} if env_file.exists() else {}
        values.update({k: v for k, v in os.environ.items() if v != ""})
        get = values.get
        livekit_port = int(get("LIVEKIT_PORT", 7880))
        return cls(
            env_file=env_file,
            run_dir=Path(run_dir or REPO_ROOT / ".run").resolve(),
            livekit_url=get("LIVEKIT_URL", f"ws://{LOOPBACK}:{livekit_port}"),
            api_key=get("LIVEKIT_API_KEY", ""),
            api_secret=get("LIVEKIT_API_SECRET", ""),
            redis_port=int(get("REDIS_PORT", 6390)),
            livekit_port=livekit_port,
            rtc_tcp_port=int(get("LIVEKIT_RTC_TCP_PORT", 0)),
            rtc_udp_ports=_port_range(get("LIVEKIT_RTC_UDP_PORTS", "50000-50100")),
            sip_port=int(get("SIP_PORT", 5060)),
            sip_rtp_ports=_port_range(get("SIP_RTP_PORTS", "10000-10100")),
            sip_health_port=int(get("SIP_HEALTH_PORT", 8080)),
            agent_http_port=int(get("AGENT_HTTP_PORT", 8081)),
            local_openai_port=int(get("LOCAL_OPENAI_PORT", 8000)),
            playground_port=int(get("PLAYGROUND_PORT", 8090)),
            openai_api_key=get("OPENAI_API_KEY", ""),
            openai_base_url=get("OPENAI_BASE_URL", ""),
            extra_env={k: v for k, v in values.items() if k not in os.environ},
        )

    def with_credentials(self, api_key: str, api_secret: str) -> StackSettings:
        return replace(self, api_key=api_key, api_secret=api_secret)

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def uses_remote_livekit(self) -> bool:
        """True when LIVEKIT_URL names another server (LiveKit Cloud, say): then we run no local LiveKit."""
        host = urlparse(self.livekit_url).hostname or ""
        return host not in (LOOPBACK, "localhost", "::1")

    @property
    def uses_local_ai(self) -> bool:
        """The offline endpoint runs when no OpenAI key and no other OpenAI-compatible server is configured."""
        return not self.openai_api_key and not self.openai_base_url

    @property
    def livekit_http_url(self) -> str:
        return self.livekit_url.replace("wss://", "https://").replace("ws://", "http://")

    @property
    def local_openai_url(self) -> str:
        return f"http://{LOOPBACK}:{self.local_openai_port}/v1"

    @property
    def redis_address(self) -> str:
        return f"{LOOPBACK}:{self.redis_port}"

    def env_for_processes(self) -> dict[str, str]:
        """The environment every process we start gets: `.env` plus the resolved stack values."""
        env = dict(os.environ)
        env.update(self.extra_env)
        env.update(
            LIVEKIT_URL=self.livekit_url,
            LIVEKIT_API_KEY=self.api_key,
            LIVEKIT_API_SECRET=self.api_secret,
            REDIS_PORT=str(self.redis_port),
            SIP_PORT=str(self.sip_port),
            AGENT_HTTP_PORT=str(self.agent_http_port),
            LOCAL_OPENAI_PORT=str(self.local_openai_port),
            PLAYGROUND_PORT=str(self.playground_port),
            HF_HUB_OFFLINE="1",
            PYTHONUNBUFFERED="1",
        )
        return env


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
