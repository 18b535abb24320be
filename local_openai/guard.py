"""What stands before the models: the Host and Origin checks, the API key, and each model's bounded queue.

The endpoint listens on 127.0.0.1, but every web page the user opens can send requests there. So:
- a Host that is not a loopback name (or the address we were told to bind) is refused: DNS rebinding;
- a request with an Origin, or that a browser marks as cross-site, is refused: this endpoint serves programs,
  never pages;
- every request but /healthz carries the key (`Authorization: Bearer LOCAL_OPENAI_API_KEY`).
Each answer is OpenAI's error shape with one line that says what to do.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
OPEN_PATHS = frozenset({"/healthz"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def host_name(host_header: str) -> str:
    """`127.0.0.1:8000` -> `127.0.0.1`, `[::1]:8000` -> `::1`, `LocalHost.` -> `localhost`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") <= 1 else host


class Guard:
    """ASGI middleware: Host, Origin, then the key; nothing reaches the app (or reads the body) before these pass."""

    def __init__(self, app: ASGIApp, api_key: str, extra_hosts: Iterable[str] = (),
                 body_limits: dict[str, tuple[int, str, str | None]] | None = None) -> None:
        """`body_limits`: path -> (bytes, what to say, the param to name), for a declared Content-Length (a body
        that streams past its limit is cut off by the route's own limit, max_body_size)."""
        if not api_key:
            raise ValueError("the local endpoint needs an API key")
        self.app = app
        self.api_key = api_key.encode()
        self.hosts = LOOPBACK_HOSTS | {host_name(h) for h in extra_hosts if host_name(h) not in WILDCARDS}
        self.body_limits = body_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self.problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, message, code, *param = problem
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                     "param": param[0] if param else None, "code": code}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def problem(self, scope: Scope) -> tuple | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if host_name(host) not in self.hosts:
            return (421, f"this endpoint answers only requests addressed to {', '.join(sorted(self.hosts))}; "
                         "use http://127.0.0.1:<port>/v1 as the base URL", "invalid_host")
        origin = headers.get("origin")
        if (origin is not None and origin != f"http://{host}") or \
                headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return (403, "cross-origin requests are refused: this endpoint serves programs on this machine, "
                         "not web pages", "cross_origin")
        if scope["path"] in OPEN_PATHS:
            return None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return (401, "no API key: send LOCAL_OPENAI_API_KEY (from .env) as `Authorization: Bearer <key>`",
                    "missing_api_key")
        if not hmac.compare_digest(token.strip().encode(), self.api_key):
            return (401, "wrong API key: send LOCAL_OPENAI_API_KEY (from .env) as `Authorization: Bearer <key>`",
                    "invalid_api_key")
        if scope["path"] in self.body_limits:
            limit, words, param = self.body_limits[scope["path"]]
            try:
                declared = int(headers.get("content-length") or 0)
            except ValueError:
                return 400, "the Content-Length header is not a number", "invalid_content_length"
            if declared > limit:
                return 413, f"the request body is larger than {words}, the most this endpoint reads", \
                    "body_too_large", param
        return None


class Busy(Exception):
    def __init__(self, lane: Lane):
        super().__init__(f"the local {lane.name} model already has {lane.limit} requests running or waiting "
                         "(LOCAL_OPENAI_MAX_QUEUE); retry in a moment")


class Lane:
    """One model's bounded queue: at most `limit` requests in it, running or waiting for the model's lock; one more
    is refused at once (429) instead of waiting behind work it cannot overtake. (All on the event loop: no lock.)"""

    def __init__(self, name: str, limit: int) -> None:
        self.name, self.limit, self.busy = name, limit, 0

    def enter(self) -> None:
        if self.busy >= self.limit:
            raise Busy(self)
        self.busy += 1

    def leave(self) -> None:
        self.busy -= 1
