"""The stack's components: how each is installed, configured, started and health-checked, all on 127.0.0.1 but
livekit-sip's SIP and RTP, which face the carrier (stack/phone_line.py)."""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from . import binaries, logs, phone_line
from .files import atomic_write
from .settings import LOOPBACK, REPO_ROOT, Settings


@dataclass(frozen=True)
class Component:
    name: str
    # Ports we bind (TCP unless listed in udp_ports), with the .env key that moves each.
    ports: Callable[[Settings], dict[int, str]]
    address: Callable[[Settings], str]
    command: Callable[[Settings], list[str]]
    healthy: Callable[[Settings], bool]
    version: Callable[[Settings], str]
    install: Callable[[Settings], None] = lambda s: None
    udp_ports: Callable[[Settings], dict[int, str]] = lambda s: {}
    extra_env: Callable[[Settings], dict[str, str]] = lambda s: {}
    # Checked before anything starts: a bad setting stops `up` with one line.
    check: Callable[[Settings], None] = lambda s: None
    # Ports on another address than 127.0.0.1: (address, port, udp, .env key of the address, .env key of the port).
    other_ports: Callable[[Settings], list[tuple[str, int, bool, str, str]]] = lambda s: []
    # What faces other hosts, for `status`.
    exposed: Callable[[Settings], list[phone_line.Exposure]] = lambda s: []
    health_timeout: float = 30.0
    wants: tuple[str, ...] = field(default_factory=tuple)


# A health check's answer may take this long: with calls saturating two cores, the agent's and the endpoint's HTTP
# servers answer late, and a check that gives up too soon gets a busy component restarted mid-call by the watchdog.
HEALTH_CHECK_TIMEOUT_S = 5.0


def _http_ok(url: str, accept: tuple[int, ...] = (200,)) -> bool:
    try:
        return httpx.get(url, timeout=HEALTH_CHECK_TIMEOUT_S).status_code in accept
    except httpx.HTTPError:
        return False


def _redis_ping(settings: Settings) -> bool:
    try:
        with socket.create_connection((LOOPBACK, settings.redis_port), timeout=HEALTH_CHECK_TIMEOUT_S) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _logged_since_start(settings: Settings, name: str, text: str) -> bool:
    """Whether the component's log shows `text` after the last start marker that stack/launch.py writes (in
    the log, or the rotated files before it)."""
    return text in logs.since_start(log_path(settings, name), settings.log_backups)


def log_path(settings: Settings, name: str) -> Path:
    return settings.log_dir / f"{name}.log"


def config_path(settings: Settings, name: str) -> Path:
    return settings.run_dir / "config" / f"{name}.yaml"


def _write_config(settings: Settings, name: str, body: dict) -> Path:
    path = config_path(settings, name)
    atomic_write(path, yaml.safe_dump(body, sort_keys=False), mode=0o600)  # the SIP config holds the API secret
    return path


# --- redis -------------------------------------------------------------------------------------------------------
def _redis_command(settings: Settings) -> list[str]:
    data_dir = settings.run_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    return [
        shutil.which("redis-server") or "/usr/bin/redis-server",
        "--bind", LOOPBACK, "--port", str(settings.redis_port), "--protected-mode", "yes",
        # Persistence on (an append-only file in the run folder): the SIP trunks and dispatch rules live here, and a
        # restart must not leave the number unanswered. (`up` also provisions them again at every start.)
        "--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(data_dir),
        "--daemonize", "no",
    ]


def _redis_version(_: Settings) -> str:
    import subprocess

    server = shutil.which("redis-server")
    if not server:
        return "not installed"
    out = subprocess.run([server, "--version"], capture_output=True, text=True, check=False).stdout
    return next((part.split("=", 1)[1] for part in out.split() if part.startswith("v=")), out.strip())


REDIS = Component(
    name="redis",
    ports=lambda s: {s.redis_port: "REDIS_PORT"},
    address=lambda s: f"redis://{s.redis_address}",
    command=_redis_command,
    healthy=_redis_ping,
    version=_redis_version,
    install=lambda s: binaries.ensure_debian_packages([binaries.REDIS_DEBIAN_PACKAGE]),
)


# --- livekit-server ------------------------------------------------------------------------------------------------
def _livekit_server_command(settings: Settings) -> list[str]:
    start, end = settings.rtc_udp_ports
    config = _write_config(settings, "livekit-server", {
        "port": settings.livekit_port,
        "bind_addresses": [LOOPBACK],
        "rtc": {
            "tcp_port": settings.rtc_tcp_port,  # 0 = off
            "port_range_start": start,
            "port_range_end": end,
            "use_external_ip": False,
            "node_ip": LOOPBACK,
            "enable_loopback_candidate": True,
            # Offer only loopback candidates, never the machine's other interface addresses.
            "ips": {"includes": list(settings.rtc_ips)},
        },
        "redis": {"address": settings.redis_address},
        # The agent reports lines in use / (lines + 1) (agent/admission.py), below 1 even with every line taken, and
        # turns a call past its lines away itself (486 Busy Here). livekit's default 0.7 would stop dispatching
        # before that, and the caller would ring until SIP_RINGING_TIMEOUT.
        "agents": {"target_load": 1.0},
        "logging": {"level": "info"},
    })
    return [str(binaries.installed_path(binaries.LIVEKIT_SERVER, settings.bin_dir)), "--config", str(config)]


LIVEKIT_SERVER = Component(
    name="livekit-server",
    ports=lambda s: {s.livekit_port: "LIVEKIT_PORT"}
    | ({s.rtc_tcp_port: "LIVEKIT_RTC_TCP_PORT"} if s.rtc_tcp_port else {}),
    address=lambda s: f"ws://{LOOPBACK}:{s.livekit_port}",
    command=_livekit_server_command,
    # Keys travel in the environment, not in a file other users could read.
    extra_env=lambda s: {"LIVEKIT_KEYS": f"{s.api_key}: {s.api_secret}"},
    healthy=lambda s: _http_ok(f"http://{LOOPBACK}:{s.livekit_port}/"),
    version=lambda s: binaries.binary_version(binaries.installed_path(binaries.LIVEKIT_SERVER, s.bin_dir)),
    install=lambda s: binaries.ensure_go_server(binaries.LIVEKIT_SERVER, s.bin_dir),
    wants=("redis",),
)


# --- livekit-sip ---------------------------------------------------------------------------------------------------
def _livekit_sip_command(settings: Settings) -> list[str]:
    start, end = settings.sip_rtp_ports
    config = _write_config(settings, "livekit-sip", {
        "api_key": settings.api_key,
        "api_secret": settings.api_secret,
        "ws_url": f"ws://{LOOPBACK}:{settings.livekit_port}",
        "redis": {"address": settings.redis_address},
        **phone_line.livekit_sip_config(settings),
        "rtp_port": f"{start}-{end}",
        "health_port": settings.sip_health_port,
        # This machine also runs the models, so it is busy by design; 0.9 would turn calls away as "under load".
        "max_cpu_utilization": 1.0,
        "logging": {"level": settings.sip_log_level},
    })
    return [str(binaries.installed_path(binaries.LIVEKIT_SIP, settings.bin_dir)), "--config", str(config)]


def _sip_ports(settings: Settings) -> list[tuple[str, int, bool, str, str]]:
    address = settings.sip_listen_ip
    ports = [(address, settings.sip_port, False, "SIP_LISTEN_IP", "SIP_PORT"),
             (address, settings.sip_port, True, "SIP_LISTEN_IP", "SIP_PORT")]
    if settings.sip_tls:
        ports.append((address, settings.sip_tls_port, False, "SIP_LISTEN_IP", "SIP_TLS_PORT"))
    return ports


def _sip_address(settings: Settings) -> str:
    address = f"sip:{settings.sip_listen_ip}:{settings.sip_port}"
    if settings.sip_tls:
        address += f", sips:{settings.sip_listen_ip}:{settings.sip_tls_port}"
    return address


LIVEKIT_SIP = Component(
    name="livekit-sip",
    ports=lambda s: {s.sip_health_port: "SIP_HEALTH_PORT"},
    other_ports=_sip_ports,
    check=phone_line.check,
    exposed=phone_line.exposures,
    address=_sip_address,
    command=_livekit_sip_command,
    # 429 means up but busy.
    healthy=lambda s: _http_ok(f"http://{LOOPBACK}:{s.sip_health_port}/", accept=(200, 429)),
    version=lambda s: binaries.binary_version(binaries.installed_path(binaries.LIVEKIT_SIP, s.bin_dir)),
    install=lambda s: binaries.ensure_go_server(binaries.LIVEKIT_SIP, s.bin_dir),
    wants=("redis", "livekit-server"),
)


# --- our Python services ---------------------------------------------------------------------------------------------
def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


LOCAL_OPENAI = Component(
    name="local-openai",
    ports=lambda s: {s.local_openai_port: "LOCAL_OPENAI_PORT"},
    address=lambda s: s.local_openai_url,
    command=lambda s: _python("-m", "local_openai", "--host", LOOPBACK, "--port", str(s.local_openai_port)),
    # /healthz answers only once every model is loaded (and, unlike /v1, wants no key).
    healthy=lambda s: _http_ok(f"http://{LOOPBACK}:{s.local_openai_port}/healthz"),
    version=lambda s: "offline models",
    health_timeout=600.0,  # the first start assembles and verifies the LLM (about 1 GB)
)

def _prepare_agent_models(_: Settings) -> None:
    from agent.embeddings import prepare_embeddings  # imported here: the CLI needs no model code otherwise

    prepare_embeddings()


AGENT = Component(
    name="agent",
    ports=lambda s: {s.agent_http_port: "AGENT_HTTP_PORT"},
    address=lambda s: f"http://{LOOPBACK}:{s.agent_http_port}/",
    # `main.py start` gives up (exit 0) after 16 failed connection attempts, so a supervisor restarts it.
    command=lambda s: _python(str(REPO_ROOT / "main.py"), "start"),
    # The worker's HTTP health says OK before it has registered with the server; the log says when it has.
    healthy=lambda s: _http_ok(f"http://{LOOPBACK}:{s.agent_http_port}/")
    and _logged_since_start(s, "agent", "registered worker"),
    version=lambda s: _package_version("livekit-agents"),
    install=_prepare_agent_models,
    health_timeout=120.0,
    wants=("livekit-server",),
)

PLAYGROUND = Component(
    name="playground",
    ports=lambda s: {s.playground_port: "PLAYGROUND_PORT"},
    address=lambda s: f"http://{LOOPBACK}:{s.playground_port}/",
    command=lambda s: _python("-m", "playground", "--host", LOOPBACK, "--port", str(s.playground_port)),
    healthy=lambda s: _http_ok(f"http://{LOOPBACK}:{s.playground_port}/healthz"),
    version=lambda s: _package_version("livekit-api"),
    wants=("livekit-server",),
)


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{name} {version(name)}"
    except PackageNotFoundError:
        return "not installed"


ALL = (REDIS, LIVEKIT_SERVER, LIVEKIT_SIP, LOCAL_OPENAI, AGENT, PLAYGROUND)
BY_NAME = {component.name: component for component in ALL}
SERVERS = ("redis", "livekit-server", "livekit-sip")


def wanted_components(settings: Settings, names: list[str] | None = None) -> list[Component]:
    """What `up` runs: everything, less local LiveKit when LIVEKIT_URL is remote and the endpoint when a key is set."""
    chosen = [BY_NAME[name] for name in names] if names else list(ALL)
    if settings.uses_remote_livekit:
        chosen = [c for c in chosen if c.name not in SERVERS]
    if not settings.uses_local_ai:
        chosen = [c for c in chosen if c is not LOCAL_OPENAI]
    return chosen
