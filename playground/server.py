"""The local playground: a small page to talk to the agent from a browser, and the endpoint that gives it tokens.

The token endpoint never exposes the API secret, mints only fresh `web-...` rooms (a page cannot ask for
someone else's room, a phone caller's say), and grants what the page needs and no more. It answers only the page
itself: a request from another origin, or addressed to a host name that is not ours (DNS rebinding), is refused;
each client address may start PLAYGROUND_SESSIONS_PER_MINUTE sessions a minute; and at most
PLAYGROUND_MAX_SESSIONS web conversations run at once, so web users cannot take the phone lines.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from stack.settings import Settings

from .tokens import WEB_ROOM_PREFIX, join_token, new_room_name

HERE = Path(__file__).resolve().parent
CLIENT_BUNDLE = HERE / "web" / "node_modules" / "livekit-client" / "dist" / "livekit-client.umd.js"
# Long enough to connect (the page does so at once); LiveKit refreshes the token of a participant who is in.
SESSION_TTL = timedelta(minutes=2)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class WebLimits:
    max_sessions: int = Settings.default("playground_max_sessions")
    sessions_per_minute: int = Settings.default("playground_sessions_per_minute")
    allowed_hosts: tuple[str, ...] = ()
    max_chat_chars: int = Settings.default("agent_max_chat_chars")


class Refused(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message = status, message
        self.headers = {**(headers or {}), **({"retry-after": str(retry_after)} if retry_after else {})}


def host_name(host: str) -> str:
    """`127.0.0.1:8090` -> `127.0.0.1`, `[::1]:8090` -> `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class RateLimit:
    """At most `per_minute` events per key in any 60 s."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute, self.clock = per_minute, clock
        self.events: dict[str, deque[float]] = {}

    def take(self, key: str) -> None:
        now = self.clock()
        for other in [k for k, times in self.events.items() if times and now - times[-1] >= 60]:
            del self.events[other]  # forget clients quiet for a minute: the table stays small
        times = self.events.setdefault(key, deque())
        while times and now - times[0] >= 60:
            times.popleft()
        if len(times) >= self.per_minute:
            wait = math.ceil(60 - (now - times[0]))
            raise Refused(429, f"too many sessions from this address ({self.per_minute} a minute, "
                               f"PLAYGROUND_SESSIONS_PER_MINUTE); try again in {wait} s", wait)
        times.append(now)


class WebSessions:
    """Counts web conversations: rooms named web-... with someone in them (LiveKit's list), plus the rooms minted
    in the last SESSION_TTL that nobody has joined yet (a token for them still works). A client's new session
    replaces its own earlier unjoined one (a page that reconnects)."""

    def __init__(self, limit: int, live_rooms: Callable[[], Awaitable[set[str]]],
                 clock: Callable[[], float] = time.monotonic):
        self.limit, self.live_rooms, self.clock = limit, live_rooms, clock
        self.pending: dict[str, tuple[str, float]] = {}  # room -> (client, minted at)
        self._lock = asyncio.Lock()

    async def claim(self, client: str) -> str:
        async with self._lock:
            if self.limit == 0:
                raise Refused(503, "web conversations are off here (PLAYGROUND_MAX_SESSIONS=0); call the number "
                                   "instead")
            try:
                live = await self.live_rooms()
            except Exception as error:  # LiveKit down or unreachable
                raise Refused(503, f"cannot reach the LiveKit server to count web sessions "
                                   f"({error.__class__.__name__}); is `python cli.py up` running?") from None
            now, ttl = self.clock(), SESSION_TTL.total_seconds()
            self.pending = {room: (who, at) for room, (who, at) in self.pending.items()
                            if now - at < ttl and room not in live and who != client}
            if len(live) + len(self.pending) >= self.limit:
                raise Refused(429, f"all {self.limit} web session{'s' if self.limit != 1 else ''} are in use "
                                   "(PLAYGROUND_MAX_SESSIONS); try again when one ends", 10)
            room = new_room_name()
            self.pending[room] = (client, now)
            return room


@dataclass(frozen=True)
class CallsAccess:
    """The Calls page's store, where recordings may be read from, and its password (empty: loopback only)."""
    store: LazyStore
    recordings_root: Path
    password: str = ""


class LazyStore:
    """The call store, opened on the first request that needs it: the playground's own page works when the
    database is down, and the Calls page then says why in one line (503)."""

    def __init__(self, open_store: Callable[[], object]):
        self._open, self._store = open_store, None
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        with self._lock:
            if self._store is None:
                from calls.store import CallStoreError
                try:
                    self._store = self._open()
                except CallStoreError as error:
                    raise Refused(503, str(error)) from None
        return getattr(self._store, name)


class SessionOptions(BaseModel):
    camera: bool = False


def livekit_web_rooms(livekit_url: str, api_key: str, api_secret: str) -> Callable[[], Awaitable[set[str]]]:
    """The web-... rooms on the LiveKit server that someone is in."""
    async def rooms() -> set[str]:
        from livekit import api

        async with api.LiveKitAPI(livekit_url, api_key, api_secret) as lk:
            listed = (await lk.room.list_rooms(api.ListRoomsRequest())).rooms
        return {room.name for room in listed if room.name.startswith(WEB_ROOM_PREFIX) and room.num_participants}
    return rooms


def create_app(livekit_url: str, api_key: str, api_secret: str, agent_name: str, limits: WebLimits = WebLimits(),
               live_rooms: Callable[[], Awaitable[set[str]]] | None = None,
               calls: CallsAccess | None = None) -> FastAPI:
    app = FastAPI(title="Phone assistant playground", docs_url=None, redoc_url=None)
    hosts = LOOPBACK_HOSTS | set(limits.allowed_hosts)
    rate = RateLimit(limits.sessions_per_minute)
    sessions = WebSessions(limits.max_sessions, live_rooms or livekit_web_rooms(livekit_url, api_key, api_secret))

    @app.exception_handler(Refused)
    async def refused(_: Request, error: Refused):
        return JSONResponse({"error": error.message}, error.status, headers=error.headers or None)

    def same_origin(request: Request) -> None:
        """Only the page itself may ask: its own Host, and its own origin (browsers send Origin with a POST)."""
        host = request.headers.get("host", "")
        if host_name(host) not in hosts:
            raise Refused(421, f"this page answers only as {', '.join(sorted(hosts))}; open it at "
                               "http://127.0.0.1:<PLAYGROUND_PORT>/ or add the name to PLAYGROUND_ALLOWED_HOSTS")
        origin = request.headers.get("origin")
        if origin is None or urlparse(origin).netloc.lower() != host.lower() or \
                request.headers.get("sec-fetch-site", "same-origin") != "same-origin":
            raise Refused(403, "sessions are only for this server's own page: open it and press Connect")

    @app.get("/healthz")
    async def healthz():
        return {"ok": True, "livekit_client": CLIENT_BUNDLE.exists()}

    @app.post("/api/session")
    async def session(request: Request, options: SessionOptions | None = None):
        """A new room and a token for it; the agent is dispatched into that room when the user joins. The camera
        is granted only when the page asks for it ({"camera": true})."""
        same_origin(request)
        client = request.client.host if request.client else "unknown"
        rate.take(client)
        room = await sessions.claim(client)
        identity = f"web-{secrets.token_hex(3)}"
        camera = bool(options and options.camera)
        token = join_token(api_key, api_secret, room, identity, agent_name, SESSION_TTL, camera=camera)
        return {"url": livekit_url, "room": room, "identity": identity, "token": token, "camera": camera,
                "max_chat_chars": limits.max_chat_chars}

    @app.get("/livekit-client.umd.js")
    async def livekit_client():
        if not CLIENT_BUNDLE.exists():
            return JSONResponse({"error": "livekit-client is not installed: run `npm ci` in playground/web"}, 500)
        return FileResponse(CLIENT_BUNDLE, media_type="text/javascript")

    if calls is not None:
        from .calls_api import CallsGuard, calls_router  # here: it builds on this module's Refused and host_name

        app.include_router(calls_router(calls.store, CallsGuard(frozenset(hosts), calls.password),
                                        calls.recordings_root))
    app.mount("/", StaticFiles(directory=HERE / "static", html=True), name="static")
    return app


def limits_from(settings: Settings, extra_hosts: Iterable[str] = ()) -> WebLimits:
    hosts = {*settings.playground_allowed_hosts, *(host_name(h) for h in extra_hosts if h not in ("0.0.0.0", "::"))}
    return WebLimits(max_sessions=settings.playground_max_sessions,
                     sessions_per_minute=settings.playground_sessions_per_minute,
                     allowed_hosts=tuple(sorted(hosts)), max_chat_chars=settings.agent_max_chat_chars)


def calls_access(settings: Settings, bind_host: str) -> CallsAccess:
    """The Calls page's access; SystemExit (one line) for a server that would show call records beyond this
    machine without a password."""
    if not is_loopback(bind_host) and not settings.playground_password:
        raise SystemExit(f"the playground would serve call records on {bind_host}: set PLAYGROUND_PASSWORD in .env "
                         "(the Calls page then asks for it), or listen on 127.0.0.1")
    from calls.store import CallStore

    return CallsAccess(LazyStore(lambda: CallStore.open(settings)), settings.recordings_dir,
                       settings.playground_password)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host_name(host) if host.startswith("[") else host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def app_from_settings(settings: Settings, bind_host: str = "127.0.0.1") -> FastAPI:
    if not settings.api_key or not settings.api_secret:
        raise SystemExit("no LIVEKIT_API_KEY / LIVEKIT_API_SECRET: run `python cli.py up` or set them in .env")
    calls = calls_access(settings, bind_host)
    return create_app(settings.playground_livekit_url or settings.livekit_url, settings.api_key,
                      settings.api_secret, settings.agent_name, limits_from(settings, [bind_host]),
                      live_rooms=livekit_web_rooms(settings.livekit_http_url, settings.api_key, settings.api_secret),
                      calls=calls)
