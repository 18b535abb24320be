"""The call store (calls/): the same tests on SQLite and on a real PostgreSQL server of the test's own."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, make_url, text

from calls.models import EndReason, MessageReason, WebhookState
from calls.store import SQLITE_FILE, CallStore, CallStoreError, UnknownCall, UnknownMessage, database_url
from stack.settings import Settings, SettingsError

pytestmark = pytest.mark.unit


@pytest.fixture
def store(call_store_url):
    with CallStore.at(call_store_url, unfinished_after=timedelta(hours=1)) as store:
        yield store


def at(minute: int) -> datetime:
    return datetime(2026, 11, 25, 10, minute, tzinfo=UTC)


def test_open_creates_the_schema_once_and_reopening_keeps_the_data(call_store_url):
    with CallStore.at(call_store_url) as first:
        call_id = first.start_call(room="call-1", kind="phone")
        tables = set(inspect(first.engine).get_table_names())
        assert {"calls", "turns", "messages", "call_store_version"} <= tables
        with first.engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM call_store_version")).scalar() == "0002"
        if make_url(call_store_url).get_backend_name() == "sqlite":  # callers' data: readable by its owner only
            files = [Path(make_url(call_store_url).database + end) for end in ("", "-wal", "-shm")]
            assert all(file.exists() and file.stat().st_mode & 0o077 == 0 for file in files)
    with CallStore.at(call_store_url) as again:  # migrating an up-to-date store changes nothing
        assert [call.id for call in again.list_calls()] == [call_id]


def test_a_call_is_written_turn_by_turn_and_read_back_whole(store):
    call_id = store.start_call(room="call-+15550123_abc", kind="phone", caller_number="+15550123",
                               dialled_number="+15550100", trunk_id="ST_trunk", provider="local",
                               llm_model="qwen2.5-coder-0.5b", started_at=at(0))
    store.mark_answered(call_id, at(0).replace(second=1))
    assert store.add_turn(call_id, role="assistant", text="Harbor Dental, how can I help?") == 0
    assert store.add_turn(call_id, role="user", text="When are you open?", intent="hours", intent_confidence=0.93,
                          started_at=at(1), ended_at=at(1).replace(second=2),
                          metrics={"end_of_turn_delay": 0.41, "transcription_delay": 0.22}) == 1
    assert store.add_turn(call_id, role="tool", text="transferring", tool_name="transfer_call",
                          tool_args={"reason": "wants a person"}) == 2
    assert store.add_turn(call_id, role="assistant", text="We are open Monday", interrupted=True,
                          metrics={"llm_node_ttft": 0.8, "tts_node_ttfb": 0.3, "e2e_latency": 1.6}) == 3
    assert store.end_call(call_id, EndReason.transferred, "+15550199", at=at(2))

    call = store.get_call(call_id)
    assert (call.caller_number, call.dialled_number, call.trunk_id, call.kind) == (
        "+15550123", "+15550100", "ST_trunk", "phone")
    assert call.started_at == at(0) and call.ended_at == at(2) and call.started_at.tzinfo is not None
    assert (call.end_reason, call.end_detail) == ("transferred", "+15550199")
    assert [(turn.seq, turn.role) for turn in call.turns] == [(0, "assistant"), (1, "user"), (2, "tool"),
                                                              (3, "assistant")]
    user, tool, answer = call.turns[1], call.turns[2], call.turns[3]
    assert (user.intent, user.intent_confidence, user.metrics["end_of_turn_delay"]) == ("hours", 0.93, 0.41)
    assert (tool.tool_name, tool.tool_args) == ("transfer_call", {"reason": "wants a person"})
    assert answer.interrupted and answer.metrics["e2e_latency"] == 1.6

    shape = json.loads(json.dumps(store.to_dict(call)))  # plain JSON all the way down
    assert shape["status"] == "ended" and shape["duration_s"] == 120.0
    assert shape["started_at"] == "2026-11-25T10:00:00+00:00"
    assert shape["turns"][1] == {
        "seq": 1, "role": "user", "text": "When are you open?", "started_at": "2026-11-25T10:01:00+00:00",
        "ended_at": "2026-11-25T10:01:02+00:00", "interrupted": False, "intent": "hours", "intent_confidence": 0.93,
        "tool_name": None, "tool_args": None,
        "metrics": {"end_of_turn_delay": 0.41, "transcription_delay": 0.22}}
    assert "turns" not in store.to_dict(call, turns=False)


def test_a_store_made_before_messages_existed_is_migrated_keeping_its_calls(call_store_url):
    from alembic import command
    from alembic.config import Config

    from calls.store import MIGRATIONS

    with CallStore.at(call_store_url, migrate=False) as old:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with old.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
        with old.engine.begin() as connection:
            connection.execute(text("INSERT INTO calls (id, room, kind, started_at, webhook_attempts) "
                                    "VALUES ('c-old', 'call-old', 'phone', '2026-11-25 10:00:00', 0)"))
    with CallStore.at(call_store_url) as store:
        store.add_message("c-old", caller_name="Ana", callback_number="5550123", text="Call me", reason="asked")
        assert [message.caller_name for message in store.get_call("c-old").messages] == ["Ana"]


def test_messages_are_kept_with_their_call_and_listed_newest_first(store):
    first = store.start_call(room="call-1", kind="phone", caller_number="+15550123")
    second = store.start_call(room="call-2", kind="web")
    store.add_message(first, caller_name="Ana Lima", callback_number="5550123", text="Please call about the cake.",
                      reason=MessageReason.no_colleague, taken_at=at(5))
    store.add_message(second, caller_name="Bo", callback_number="", text="Wrong order.", reason="transfer_failed",
                      taken_at=at(9))
    assert [m.caller_name for m in store.list_messages()] == ["Bo", "Ana Lima"]
    assert [m.caller_name for m in store.list_messages(since=at(6))] == ["Bo"]
    assert [m.caller_name for m in store.list_messages(limit=1)] == ["Bo"]
    shape = json.loads(json.dumps(store.to_dict(store.get_call(first))))
    assert shape["messages"] == [{"id": shape["messages"][0]["id"], "call_id": first,
                                  "taken_at": "2026-11-25T10:05:00+00:00", "caller_name": "Ana Lima",
                                  "callback_number": "5550123", "text": "Please call about the cake.",
                                  "reason": "no_colleague", "handled_at": None}]
    assert store.to_dict(store.list_calls(turns=True)[0])["messages"][0]["text"] in ("Wrong order.",
                                                                                    "Please call about the cake.")
    bo = store.list_messages()[0].id
    assert store.mark_message_handled(bo, at=at(10)) and not store.mark_message_handled(bo)
    assert [m.caller_name for m in store.list_messages(open_only=True)] == ["Ana Lima"]
    assert store.list_messages()[0].handled_at == at(10)
    with pytest.raises(UnknownMessage):
        store.mark_message_handled(10_000)
    with pytest.raises(UnknownCall):
        store.add_message("no-such-call", caller_name="x", callback_number="", text="", reason="asked")
    with pytest.raises(ValueError):
        store.add_message(first, caller_name="x", callback_number="", text="", reason="felt like it")


def test_each_turn_is_visible_to_other_readers_at_once_and_an_unclosed_call_reads_as_such(store, call_store_url):
    """What a killed agent process leaves: every turn it wrote, and a call with no end."""
    call_id = store.start_call(room="call-1", kind="phone")
    store.add_turn(call_id, role="user", text="Hello?")
    with CallStore.at(call_store_url, migrate=False, unfinished_after=timedelta(hours=1)) as reader:
        call = reader.get_call(call_id)
        assert [turn.text for turn in call.turns] == ["Hello?"]
        assert call.ended_at is None and reader.status(call) == "in_progress"
        assert reader.status(call, at=call.started_at + timedelta(hours=2)) == "unfinished"
        assert reader.to_dict(call)["duration_s"] is None


def test_the_first_end_recorded_stands(store):
    call_id = store.start_call(room="call-1", kind="phone")
    assert store.end_call(call_id, "transferred", "+15550199")
    assert not store.end_call(call_id, EndReason.caller_hung_up)  # the line dropping after the transfer
    assert store.get_call(call_id).end_reason == "transferred"
    with pytest.raises(ValueError):
        store.end_call(store.start_call(room="call-2", kind="phone"), "fell asleep")


def test_listing_filters_by_time_and_number_newest_first(store):
    early = store.start_call(room="call-a", kind="phone", caller_number="+15550123", started_at=at(0))
    web = store.start_call(room="web-b", kind="web", started_at=at(10))
    late = store.start_call(room="call-c", kind="phone", caller_number="+15550777", dialled_number="+15550100",
                            started_at=at(20))
    assert [call.id for call in store.list_calls()] == [late, web, early]
    assert [call.id for call in store.list_calls(since=at(10))] == [late, web]
    assert [call.id for call in store.list_calls(number="0123")] == [early]
    assert [call.id for call in store.list_calls(number="+15550100")] == [late]  # the dialled number too
    assert [call.id for call in store.list_calls(limit=1)] == [late]
    assert [call.id for call in store.iter_calls(batch=2)] == [early, web, late]  # exports: oldest first
    assert store.list_calls(number="%") == []  # a LIKE wildcard matches itself only


def test_a_call_is_found_by_its_id_or_a_unique_prefix(store):
    first = store.start_call(room="call-1", kind="phone", call_id="aaaa1111-0000-0000-0000-000000000000")
    store.start_call(room="call-2", kind="phone", call_id="aaaa2222-0000-0000-0000-000000000000")
    assert store.get_call(first).id == first and store.get_call("aaaa1").id == first
    with pytest.raises(UnknownCall, match="more than one call"):
        store.get_call("aaaa")
    with pytest.raises(UnknownCall, match="no call with id bbbb"):
        store.get_call("bbbb")
    with pytest.raises(UnknownCall):
        store.add_turn("bbbb", role="user", text="hi")
    with pytest.raises(UnknownCall):
        store.end_call("bbbb", "error")


def test_summary_recording_and_webhook_state_are_stored(store):
    call_id = store.start_call(room="call-1", kind="phone")
    store.set_summary(call_id, "Asked about opening hours; answered.", "answered")
    store.set_recording(call_id, "/srv/recordings/x.ogg")
    store.set_webhook_state(call_id, WebhookState.pending)
    store.set_webhook_state(call_id, "failed", error="connection refused", attempted=True)
    store.set_webhook_state(call_id, "delivered", attempted=True)
    call = store.get_call(call_id)
    assert (call.summary, call.outcome, call.recording_path) == (
        "Asked about opening hours; answered.", "answered", "/srv/recordings/x.ogg")
    assert (call.webhook_state, call.webhook_attempts, call.webhook_last_error) == ("delivered", 2, None)


def test_calls_written_at_once_from_several_threads_keep_every_turn(call_store_url):
    """The agent runs calls side by side (each job in a process of its own, each writing from a thread)."""
    stores = [CallStore.at(call_store_url) for _ in range(3)]
    ids = [each.start_call(room=f"call-{n}", kind="phone") for n, each in enumerate(stores)]

    def talk(each: CallStore, call_id: str) -> None:
        for n in range(20):
            each.add_turn(call_id, role="user" if n % 2 else "assistant", text=f"turn {n}")
    threads = [threading.Thread(target=talk, args=pair) for pair in zip(stores, ids)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for call_id in ids:
        assert [turn.text for turn in stores[0].get_call(call_id).turns] == [f"turn {n}" for n in range(20)]
    for each in stores:
        each.close()


def test_an_unreachable_database_is_one_line_with_no_password(tmp_path):
    url = f"postgresql+psycopg://calls:hunter2@/calls?host={tmp_path}&port=1"  # no server behind that socket
    with pytest.raises(CallStoreError) as failure:
        CallStore.at(url)
    message = str(failure.value)
    assert "\n" not in message and "hunter2" not in message and "unreachable" in message
    assert "***" in message


def test_the_settings_choose_the_database(tmp_path):
    settings = Settings.load(environ={"PHONE_RUN_DIR": str(tmp_path), "PHONE_ENV_FILE": str(tmp_path / "none")})
    assert str(database_url(settings)) == f"sqlite:///{tmp_path / SQLITE_FILE}"
    remote = Settings.of(DATABASE_URL="postgresql://calls:secret@db.example:5432/calls")
    assert database_url(remote).drivername == "postgresql+psycopg"
    with pytest.raises(SettingsError, match="DATABASE_URL=mysql://x in the environment is not valid"):
        Settings.of(DATABASE_URL="mysql://x")
