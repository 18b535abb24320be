"""The Calls page's API on the real playground app and a real call store (SQLite in a temporary folder): what it
lists and shows, and who may read it (same origin, loopback only without PLAYGROUND_PASSWORD, basic auth with it)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from playground.server import CallsAccess, LazyStore, WebLimits, app_from_settings, create_app
from stack.settings import Settings

pytestmark = pytest.mark.unit
PAGE = {"Host": "127.0.0.1:8090"}
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def app(store, tmp_path, password: str = "", allowed_hosts=()) -> TestClient:
    access = CallsAccess(LazyStore(lambda: store), tmp_path, password)
    application = create_app("ws://127.0.0.1:7880", "APIkey", "s" * 48, "phone-assistant",
                             WebLimits(allowed_hosts=tuple(allowed_hosts)), live_rooms=lambda: set(), calls=access)
    return TestClient(application, client=("127.0.0.1", 50000))


def a_call(store, number="+15550123", started=T0, ended=True, recording=None) -> str:
    call_id = store.start_call(room=f"call-_{number}_x", kind="phone", caller_number=number,
                               dialled_number="+15550100", started_at=started)
    store.mark_answered(call_id, started + timedelta(seconds=1))
    store.add_turn(call_id, role="assistant", text="Hello, Example Company.", started_at=started)
    store.add_turn(call_id, role="user", text="When are you open?", metrics={"end_of_turn_delay": 0.4},
                   intent="hours", intent_confidence=0.91)
    store.add_turn(call_id, role="assistant", text="Monday to Friday, 9 to 5.",
                   metrics={"llm_ttft": 0.5, "tts_ttfb": 0.3, "e2e_latency": 1.3})
    if recording:
        store.set_recording(call_id, recording)
    if ended:
        store.end_call(call_id, "caller_hung_up", at=started + timedelta(seconds=30))
        store.set_summary(call_id, "Asked about opening hours.", "answered")
    return call_id


def basic(password: str, user: str = "me") -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_the_list_filters_by_number_and_time_and_shows_calls_in_progress(store, tmp_path):
    old = a_call(store, "+15550123", T0)
    live = a_call(store, "+15550999", T0 + timedelta(hours=1), ended=False)
    client = app(store, tmp_path)
    everything = client.get("/api/calls", headers=PAGE).json()["calls"]
    assert [c["id"] for c in everything] == [live, old]  # newest first
    assert {c["id"]: c["status"] for c in everything} == {live: "in_progress", old: "ended"}
    assert all("turns" not in c or not c["turns"] for c in everything)
    by_number = client.get("/api/calls", params={"number": "0999"}, headers=PAGE).json()["calls"]
    assert [c["id"] for c in by_number] == [live]
    since = client.get("/api/calls", params={"since": "2026-11-25T09:30:00Z"}, headers=PAGE).json()["calls"]
    assert [c["id"] for c in since] == [live]
    bad = client.get("/api/calls", params={"since": "yesterday"}, headers=PAGE)
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["error"]


def test_one_call_has_its_transcript_metrics_and_summary(store, tmp_path):
    call_id = a_call(store)
    call = app(store, tmp_path).get(f"/api/calls/{call_id[:8]}", headers=PAGE).json()
    assert call["id"] == call_id and call["summary"] == "Asked about opening hours." and call["outcome"] == "answered"
    assert [(t["role"], t["text"]) for t in call["turns"]] == [
        ("assistant", "Hello, Example Company."), ("user", "When are you open?"),
        ("assistant", "Monday to Friday, 9 to 5.")]
    assert call["turns"][2]["metrics"]["e2e_latency"] == 1.3 and call["turns"][1]["intent"] == "hours"
    assert call["recording_url"] is None
    missing = app(store, tmp_path).get("/api/calls/nonexistent-id", headers=PAGE)
    assert missing.status_code == 404 and missing.json()["error"]


def test_a_recording_is_served_from_the_store_folder_only(store, tmp_path):
    audio = tmp_path / "recordings" / "call.ogg"
    audio.parent.mkdir()
    audio.write_bytes(b"OggS fake audio")
    recorded = a_call(store, recording=audio)
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere.ogg"
    outside.write_bytes(b"not ours")
    elsewhere = a_call(store, "+15550777", recording=outside)
    client = app(store, tmp_path)
    url = client.get(f"/api/calls/{recorded}", headers=PAGE).json()["recording_url"]
    served = client.get(url, headers=PAGE)
    assert served.status_code == 200 and served.content == b"OggS fake audio"
    assert served.headers["content-type"].startswith("audio/ogg")
    assert client.get(f"/api/calls/{elsewhere}", headers=PAGE).json()["recording_url"] is None
    assert client.get(f"/api/calls/{elsewhere}/recording", headers=PAGE).status_code == 404


@pytest.mark.parametrize("headers, status", [
    ({"Host": "evil.example:8090"}, 421),  # DNS rebinding
    ({**PAGE, "Sec-Fetch-Site": "cross-site"}, 403),  # another site's page
    ({**PAGE, "Origin": "http://evil.example"}, 403),
    ({"Host": "phone.example.com"}, 403),  # an allowed name, but no password: loopback only
    ({**PAGE, "Sec-Fetch-Site": "none"}, 200),  # typed into the address bar
    ({**PAGE, "Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:8090"}, 200),
])
def test_without_a_password_only_the_page_on_loopback_reads_calls(store, tmp_path, headers, status):
    a_call(store)
    client = app(store, tmp_path, allowed_hosts=["phone.example.com"])
    for path in ("/api/calls", "/calls"):
        response = client.get(path, headers=headers)
        assert response.status_code == status, (path, response.text)
        if status != 200:
            assert response.json()["error"]


def test_with_a_password_every_request_needs_it(store, tmp_path):
    a_call(store)
    client = app(store, tmp_path, password="open sesame", allowed_hosts=["phone.example.com"])
    for host in ("127.0.0.1:8090", "phone.example.com"):
        refused = client.get("/api/calls", headers={"Host": host})
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic ")
        assert client.get("/api/calls", headers={"Host": host, **basic("wrong")}).status_code == 401
        assert client.get("/api/calls", headers={"Host": host, "Authorization": "Basic !!"}).status_code == 401
        assert client.get("/api/calls", headers={"Host": host, **basic("open sesame")}).status_code == 200
        page = client.get("/calls", headers={"Host": host, **basic("open sesame", "anyone")})
        assert page.status_code == 200 and "calls.js" in page.text
    assert client.get("/", headers=PAGE).status_code == 200  # the talk page itself needs no password


def test_the_playground_refuses_to_serve_calls_beyond_loopback_without_a_password():
    settings = Settings.of(LIVEKIT_API_KEY="APIkey", LIVEKIT_API_SECRET="s" * 48)
    with pytest.raises(SystemExit, match="PLAYGROUND_PASSWORD"):
        app_from_settings(settings, "0.0.0.0")
    app_from_settings(settings, "127.0.0.1")
    app_from_settings(settings, "::1")
    app_from_settings(Settings.of(LIVEKIT_API_KEY="APIkey", LIVEKIT_API_SECRET="s" * 48,
                                  PLAYGROUND_PASSWORD="open sesame"), "0.0.0.0")


def test_a_store_that_cannot_be_opened_is_one_line_and_the_talk_page_still_works(tmp_path):
    from calls.store import CallStoreError

    def unreachable():
        raise CallStoreError("the call store at postgresql://u:***@db/calls is unreachable: connection refused")
    access = CallsAccess(LazyStore(unreachable), tmp_path)
    client = TestClient(create_app("ws://127.0.0.1:7880", "APIkey", "s" * 48, "phone-assistant",
                                   live_rooms=lambda: set(), calls=access), client=("127.0.0.1", 50000))
    down = client.get("/api/calls", headers=PAGE)
    assert down.status_code == 503 and "unreachable" in down.json()["error"]
    assert client.get("/", headers=PAGE).status_code == 200
