"""The agent's call record (agent/call_record.py): livekit-agents' own session events, emitted by a stand-in
session, written to a real call store (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from livekit.agents import CloseReason, llm
from livekit.agents.voice.events import CloseEvent, ConversationItemAddedEvent, FunctionToolsExecutedEvent
from sqlalchemy import text

from agent.call_record import CallRecord
from agent.intents import Intent
from calls.models import EndReason
from calls.recordings import keep_recording, prune_recordings

pytestmark = pytest.mark.unit


class Session:
    """What CallRecord uses of an AgentSession: on() and its recording options."""

    def __init__(self, record_audio: bool = False):
        self.handlers: dict[str, list] = {}
        self.options = SimpleNamespace(recording_options={"audio": record_audio})

    def on(self, event, handler):
        self.handlers.setdefault(event, []).append(handler)

    def emit(self, event, value):
        for handler in self.handlers.get(event, []):
            handler(value)


def job(tmp_path, room="call-_+15550123_abc"):
    return SimpleNamespace(room=SimpleNamespace(name=room), session_directory=tmp_path / "session")


SIP_CALLER = SimpleNamespace(attributes={"sip.phoneNumber": "+15550123", "sip.trunkPhoneNumber": "+15550100",
                                         "sip.trunkID": "ST_trunk"})
SETTINGS = SimpleNamespace(local_llm_model="qwen2.5-coder-0.5b")
PROVIDERS = SimpleNamespace(name="local", llm_model="gpt-4o-mini")


def said(role: str, text: str, interrupted: bool = False, heard: float | None = None,
         **metrics) -> ConversationItemAddedEvent:
    return ConversationItemAddedEvent(item=llm.ChatMessage(role=role, content=[text], interrupted=interrupted,
                                                           metrics=metrics, transcript_confidence=heard))


async def started(store, tmp_path, session=None, **record_options) -> tuple[CallRecord, Session]:
    record = CallRecord(store, **record_options)
    record.begin(job(tmp_path), SIP_CALLER, is_phone=True, settings=SETTINGS, providers=PROVIDERS, started_ago=2.0)
    session = session or Session()
    record.attach(session, job(tmp_path))
    return record, session


async def test_a_call_is_written_as_it_happens(store, tmp_path):
    record, session = await started(store, tmp_path)
    session.emit("conversation_item_added", said("assistant", "Harbor Dental, how can I help?"))
    stopped = time.time()
    record.intent_decided("When are you open?", Intent("hours", 0.91))  # a preemptive generation decides first
    session.emit("conversation_item_added", said("user", "When are you open?", started_speaking_at=stopped - 1.5,
                                                 stopped_speaking_at=stopped, end_of_turn_delay=0.41,
                                                 transcription_delay=0.2, heard=0.8123456))
    session.emit("conversation_item_added", said("user", "Thanks, and your address?"))
    record.intent_decided("Thanks, and your address?", Intent("question", 0.66))  # decided after it was written
    session.emit("function_tools_executed", FunctionToolsExecutedEvent(
        function_calls=[llm.FunctionCall(call_id="c1", name="get_current_time", arguments='{"zone": "local"}')],
        function_call_outputs=[llm.FunctionCallOutput(call_id="c1", output="It's 10 am.", is_error=False)]))
    session.emit("conversation_item_added", said("assistant", "Monday to", interrupted=True, llm_node_ttft=0.8,
                                                 tts_node_ttfb=0.3, e2e_latency=1.6))
    await record.flush()

    call = store.list_calls(turns=True)[0]  # every turn is in before the call ends
    assert call.ended_at is None and call.answered_at is not None
    assert (call.caller_number, call.dialled_number, call.trunk_id, call.kind, call.provider, call.llm_model) == (
        "+15550123", "+15550100", "ST_trunk", "phone", "local", "qwen2.5-coder-0.5b")
    assert 1.5 < (datetime.now(UTC) - call.started_at).total_seconds() < 60  # the room's age counts
    turns = call.turns
    assert [(turn.role, turn.text) for turn in turns] == [
        ("assistant", "Harbor Dental, how can I help?"), ("user", "When are you open?"),
        ("user", "Thanks, and your address?"), ("tool", "It's 10 am."), ("assistant", "Monday to")]
    assert (turns[1].intent, turns[1].intent_confidence) == ("hours", 0.91)
    assert (turns[2].intent, turns[2].intent_confidence) == ("question", 0.66)
    assert turns[1].metrics == {"end_of_turn_delay": 0.41, "transcription_delay": 0.2,
                                "transcript_confidence": 0.8123}  # how sure the STT was
    assert abs((turns[1].ended_at - turns[1].started_at).total_seconds() - 1.5) < 0.01
    assert (turns[3].tool_name, turns[3].tool_args) == ("get_current_time", {"zone": "local"})
    assert turns[4].interrupted and turns[4].metrics == {"llm_node_ttft": 0.8, "tts_node_ttfb": 0.3,
                                                         "e2e_latency": 1.6}

    session.emit("close", CloseEvent(reason=CloseReason.PARTICIPANT_DISCONNECTED))
    await record.aclose()
    assert store.get_call(call.id).end_reason == EndReason.caller_hung_up


@pytest.mark.parametrize(("notes", "close", "expected"), [
    ([], CloseReason.PARTICIPANT_DISCONNECTED, ("caller_hung_up", None)),
    ([(EndReason.assistant_ended, None)], CloseReason.PARTICIPANT_DISCONNECTED, ("assistant_ended", None)),
    ([(EndReason.transferred, "tel:+15550199")], CloseReason.PARTICIPANT_DISCONNECTED,
     ("transferred", "tel:+15550199")),
    ([(EndReason.transferred, "tel:+15550199"), (None, None)], CloseReason.PARTICIPANT_DISCONNECTED,
     ("caller_hung_up", None)),  # the transfer failed, then the caller hung up
    ([(EndReason.silence, None)], CloseReason.USER_INITIATED, ("silence", None)),
    ([(EndReason.max_duration, None)], CloseReason.USER_INITIATED, ("max_duration", None)),
    ([], CloseReason.USER_INITIATED, ("assistant_ended", None)),
    ([], CloseReason.JOB_SHUTDOWN, ("error", "the agent shut down during the call")),
])
async def test_the_end_reason_comes_from_what_our_code_noted_else_the_close_reason(store, tmp_path, notes, close,
                                                                                   expected):
    record, session = await started(store, tmp_path)
    for note in notes:
        record.note_end(*note)
    session.emit("close", CloseEvent(reason=close))
    await record.aclose()
    call = store.list_calls()[0]
    assert (call.end_reason, call.end_detail) == expected


async def test_a_call_turned_away_keeps_what_it_was_told(store, tmp_path):
    record = CallRecord(store)
    record.begin(job(tmp_path), SIP_CALLER, is_phone=True, settings=SETTINGS, providers=PROVIDERS)
    record.said("Sorry, all our lines are busy right now.")
    record.end(EndReason.busy)
    await record.aclose()
    call = store.list_calls(turns=True)[0]
    assert call.end_reason == "busy" and [turn.text for turn in call.turns] == [
        "Sorry, all our lines are busy right now."]


async def test_a_store_that_fails_costs_the_record_not_the_call(store, tmp_path, caplog):
    record, session = await started(store, tmp_path)
    await record.flush()
    with store.engine.begin() as connection:  # the database breaks under the call
        connection.execute(text("DROP TABLE turns"))
    session.emit("conversation_item_added", said("user", "Hello?"))  # must not raise into the session
    session.emit("conversation_item_added", said("user", "Hello again?"))
    await record.aclose()
    assert sum("could not write to the call store" in line for line in caplog.messages) == 1


async def test_a_recording_is_kept_under_the_call_id_and_pruned_after_its_days(store, tmp_path):
    recordings = tmp_path / "recordings"
    record, session = await started(store, tmp_path, Session(record_audio=True), recordings_dir=recordings)
    audio = tmp_path / "session" / "audio.ogg"
    audio.parent.mkdir()
    audio.write_bytes(b"OggS fake audio")
    session.emit("close", CloseEvent(reason=CloseReason.PARTICIPANT_DISCONNECTED))
    await record.aclose()
    call = store.list_calls()[0]
    kept = recordings / f"{call.id}.ogg"
    assert call.recording_path == str(kept) and kept.read_bytes() == b"OggS fake audio"
    assert kept.stat().st_mode & 0o077 == 0

    assert prune_recordings(store, recordings, retention_days=30) == 0
    assert prune_recordings(store, recordings, retention_days=30, now=time.time() + 31 * 86400) == 1
    assert not kept.exists() and store.get_call(call.id).recording_path is None
    assert keep_recording(audio, recordings, "other").exists()
