"""The playground's token endpoint against other pages and greedy clients: same-origin only, a rate limit per
client, a cap on web conversations (so web users cannot take the phone lines), the camera only when asked for, and
chat messages cut to AGENT_MAX_CHAT_CHARS by the agent. The app is the real one; LiveKit's room list is a stand-in."""

from __future__ import annotations

import asyncio

import jwt
import pytest
from fastapi.testclient import TestClient

from agent.admission import Admission, Verdict
from agent.worker import capped_chat
from playground import server as playground
from playground.server import RateLimit, Refused, WebLimits, WebSessions, create_app

pytestmark = pytest.mark.unit
SECRET = "s" * 48
PAGE = {"Origin": "http://127.0.0.1:8090", "Host": "127.0.0.1:8090"}


class Rooms:
    """LiveKit's list of web rooms someone is in, as the test sets it."""

    def __init__(self):
        self.live: set[str] = set()
        self.down = False

    async def __call__(self) -> set[str]:
        if self.down:
            raise ConnectionError("refused")
        return set(self.live)


def app(rooms: Rooms | None = None, **limits) -> TestClient:
    limits = {"max_sessions": 100, "sessions_per_minute": 100, **limits}
    return create_app("ws://127.0.0.1:7880", "APIkey", SECRET, "phone-assistant", WebLimits(**limits),
                      live_rooms=rooms or Rooms())


def client(application, address: str = "127.0.0.1") -> TestClient:
    return TestClient(application, client=(address, 50000))


def new_session(test_client: TestClient, headers: dict | None = None, **body):
    return test_client.post("/api/session", headers=PAGE if headers is None else headers, json=body or None)


def claims(response) -> dict:
    return jwt.decode(response.json()["token"], SECRET, algorithms=["HS256"], options={"verify_aud": False})


# --- same origin -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers, status", [
    ({"Host": "127.0.0.1:8090"}, 403),  # no Origin: not the page (browsers send one with every POST)
    ({"Host": "127.0.0.1:8090", "Origin": "http://evil.example"}, 403),
    ({"Host": "127.0.0.1:8090", "Origin": "http://127.0.0.1:9999"}, 403),
    ({**PAGE, "Sec-Fetch-Site": "cross-site"}, 403),
    ({"Host": "evil.example:8090", "Origin": "http://evil.example:8090"}, 421),  # DNS rebinding
])
def test_only_the_page_itself_gets_a_session(headers, status):
    response = new_session(client(app()), headers)
    assert response.status_code == status, response.text
    assert "token" not in response.json() and response.json()["error"]


def test_the_page_gets_a_session_at_loopback_names_and_allowed_hosts():
    test_client = client(app(allowed_hosts=("phone.example.com",)))
    for host in ("127.0.0.1:8090", "localhost:8090", "[::1]:8090", "phone.example.com"):
        response = new_session(test_client, {"Host": host, "Origin": f"https://{host}"})
        assert response.status_code == 200, (host, response.text)


# --- rate limit ---------------------------------------------------------------------------------------------------
def test_each_client_address_gets_its_rate():
    application = app(sessions_per_minute=3)
    first = client(application, "10.0.0.1")
    assert [new_session(first).status_code for _ in range(3)] == [200, 200, 200]
    refused = new_session(first)
    assert refused.status_code == 429 and "PLAYGROUND_SESSIONS_PER_MINUTE" in refused.json()["error"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert new_session(client(application, "10.0.0.2")).status_code == 200


def test_the_rate_window_slides():
    now = [0.0]
    rate = RateLimit(2, clock=lambda: now[0])
    rate.take("a"), rate.take("a")
    with pytest.raises(Refused):
        rate.take("a")
    now[0] = 59.0
    with pytest.raises(Refused):
        rate.take("a")
    now[0] = 60.5
    rate.take("a")


# --- concurrent web sessions ----------------------------------------------------------------------------------------
def test_web_sessions_are_capped_and_free_up_when_they_end():
    rooms = Rooms()
    application = app(rooms, max_sessions=2)
    a, b, c = (client(application, f"10.0.0.{n}") for n in (1, 2, 3))
    first, second = new_session(a), new_session(b)
    assert first.status_code == second.status_code == 200
    full = new_session(c)
    assert full.status_code == 429 and "all 2 web sessions are in use" in full.json()["error"]
    rooms.live = {first.json()["room"], second.json()["room"]}  # both joined
    assert new_session(c).status_code == 429
    rooms.live = {second.json()["room"]}  # the first conversation ended
    assert new_session(c).status_code == 200


def test_a_page_that_reconnects_replaces_its_own_unjoined_session():
    application = app(max_sessions=1)
    page = client(application, "10.0.0.1")
    assert new_session(page).status_code == 200
    assert new_session(page).status_code == 200  # the same page again: its first token goes unused
    assert new_session(client(application, "10.0.0.2")).status_code == 429


def test_an_unjoined_session_stops_counting_when_its_token_expires():
    async def run():
        now = [0.0]
        sessions = WebSessions(1, Rooms(), clock=lambda: now[0])
        await sessions.claim("a")
        with pytest.raises(Refused):
            await sessions.claim("b")
        now[0] = playground.SESSION_TTL.total_seconds() + 1
        assert (await sessions.claim("b")).startswith("web-")
    asyncio.run(run())


def test_no_web_sessions_and_livekit_down_are_one_line_each():
    off = new_session(client(app(max_sessions=0)))
    assert off.status_code == 503 and "PLAYGROUND_MAX_SESSIONS=0" in off.json()["error"]
    rooms = Rooms()
    rooms.down = True
    down = new_session(client(app(rooms)))
    assert down.status_code == 503 and "cli.py up" in down.json()["error"]


def test_the_agent_tells_a_web_user_past_the_cap_that_the_lines_are_busy():
    """The agent enforces the cap too (tokens from `cli.py token` are web rooms as well), and phone calls are never
    turned away for it."""
    running = {"job-web-1": "web-1"}
    lines = Admission(max_calls=4, max_web=1)
    assert lines.admit("job-web-2", "web-2", running) is Verdict.BUSY
    assert lines.admit("job-call", "call-_+15550100_x", running) is Verdict.SERVE
    assert Admission(max_calls=4, max_web=2).admit("job-web-3", "web-3", running) is Verdict.SERVE


# --- grants and chat ------------------------------------------------------------------------------------------------
def test_no_camera_unless_the_page_asks_for_it():
    test_client = client(app())
    plain = new_session(test_client)
    assert claims(plain)["video"]["canPublishSources"] == ["microphone"] and plain.json()["camera"] is False
    asked = new_session(test_client, camera=True)
    assert sorted(claims(asked)["video"]["canPublishSources"]) == ["camera", "microphone"]
    assert plain.json()["max_chat_chars"] == 500  # the page sets its input's maxlength from it


def test_a_long_chat_message_reaches_the_agent_cut_to_the_cap():
    from livekit.agents.voice.room_io import TextInputEvent

    class Session:
        def __init__(self):
            self.replies = []

        def _claim_user_turn(self):
            class Turn:
                async def __aenter__(self):
                    return self

                async def __aexit__(self, *exc):
                    return False
            return Turn()

        async def interrupt(self):
            pass

        def generate_reply(self, user_input):
            self.replies.append(user_input)

    session = Session()
    on_text = capped_chat(20)
    asyncio.run(on_text(session, TextInputEvent(text="x" * 100_000)))
    asyncio.run(on_text(session, TextInputEvent(text="short question")))
    assert session.replies == ["x" * 20, "short question"]
