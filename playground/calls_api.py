"""The Calls page's API: call records, transcripts and recordings from the call store (calls/store.py).

    GET /calls                        the page (playground/static/calls.html)
    GET /api/calls?number=&since=&limit=   {"calls": [call, ...]} newest first, without turns
    GET /api/calls/{id}               one call with its turns, and `recording_url` when it was recorded
    GET /api/calls/{id}/recording     the recording (audio), when there is one

These are callers' words and numbers, so they answer only the page itself, and only where they may be seen:
- the request is addressed to one of our host names (no DNS rebinding) and comes from our own page or straight
  from the address bar (Sec-Fetch-Site; a request another site's page makes is refused);
- with PLAYGROUND_PASSWORD set, every request must carry it (HTTP basic auth, any user name);
- without one, they answer only when asked by a loopback name (127.0.0.1, localhost, ::1), and the server refuses
  to listen on another address (app_from_settings).
"""

from __future__ import annotations

import base64
import hmac
import mimetypes
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from calls.store import CallStore, UnknownCall

from .server import LOOPBACK_HOSTS, Refused, host_name

PAGE = Path(__file__).resolve().parent / "static" / "calls.html"
REALM = "Phone assistant calls"
MAX_LIST = 500


class CallsGuard:
    """Who may read call records: see the module's docstring. A refusal is the server's own error (Refused), so
    the page shows one line."""

    def __init__(self, hosts: frozenset[str], password: str):
        self.hosts, self.password = hosts, password

    def check(self, request: Request) -> None:
        host = request.headers.get("host", "")
        name = host_name(host)
        if name not in self.hosts:
            raise Refused(421, f"this page answers only as {', '.join(sorted(self.hosts))}")
        site = request.headers.get("sec-fetch-site", "same-origin")
        origin = request.headers.get("origin")
        if site not in ("same-origin", "none") or (origin and urlparse(origin).netloc.lower() != host.lower()):
            raise Refused(403, "call records are only for this server's own Calls page")
        if self.password:
            if not self.authorized(request.headers.get("authorization", "")):
                raise Refused(401, "the Calls page needs PLAYGROUND_PASSWORD (any user name)",
                              headers={"www-authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})
        elif name not in LOOPBACK_HOSTS:
            raise Refused(403, "call records are shown only at http://127.0.0.1 unless PLAYGROUND_PASSWORD "
                               "is set")

    def authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            _, _, given = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return False
        return hmac.compare_digest(given.encode(), self.password.encode())


def parse_since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        since = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(400, f"since={text!r} is not a date: use ISO 8601, like 2026-11-25T09:00:00Z") from None
    return since if since.tzinfo else since.replace(tzinfo=UTC)


def calls_router(store: CallStore, guard: CallsGuard, recordings_root: Path) -> APIRouter:
    router = APIRouter()
    root = recordings_root.resolve()

    def find(call_id: str):
        try:
            return store.get_call(call_id)
        except UnknownCall as unknown:
            raise Refused(404, str(unknown)) from None

    def recording_of(call) -> Path | None:
        if not call.recording_path:
            return None
        path = Path(call.recording_path).resolve()
        # Only files in the store's folder: a path from the database never opens anything else.
        return path if path.is_relative_to(root) and path.is_file() else None

    # Plain functions: FastAPI runs them in its thread pool, so a slow database never stalls the event loop.
    @router.get("/calls", include_in_schema=False)
    def page(request: Request):
        guard.check(request)
        return FileResponse(PAGE, media_type="text/html", headers={"cache-control": "no-store"})

    @router.get("/api/calls")
    def list_calls(request: Request, number: str | None = Query(None, max_length=64),
                   since: str | None = Query(None, max_length=64), limit: int = Query(100, ge=1, le=MAX_LIST)):
        guard.check(request)
        calls = store.list_calls(since=parse_since(since), number=(number or "").strip() or None,
                                 limit=limit)
        return {"calls": [store.to_dict(call, turns=False) for call in calls]}

    @router.get("/api/calls/{call_id}")
    def one_call(request: Request, call_id: str):
        guard.check(request)
        call = find(call_id)
        record = store.to_dict(call)
        record["recording_url"] = f"/api/calls/{call.id}/recording" if recording_of(call) else None
        return record

    @router.get("/api/calls/{call_id}/recording")
    def recording(request: Request, call_id: str):
        guard.check(request)
        path = recording_of(find(call_id))
        if path is None:
            raise Refused(404, "this call was not recorded (RECORD_CALLS), or its recording is gone (retention)")
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media_type, headers={"cache-control": "private, no-store"})

    return router
