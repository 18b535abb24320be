"""One call's record in the call store (calls/), written turn by turn as the call happens.

Every write goes to a thread of its own, in order, so the audio path never waits on the database, and each turn is
committed when it is said: a call whose process is killed keeps everything written so far (and shows no end).
A store that cannot be reached costs the record, never the call: the failure is logged once and the call goes on.

How a call ended comes from, first, what our own code said it was doing (`note_end`: the end_call tool, a transfer,
the silence and time limits) and otherwise from the session's close reason (the caller hanging up, an error).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from livekit.agents import AgentSession, CloseReason, JobContext, llm

from calls.aftercall import one_line
from calls.models import CallKind, EndReason, MessageReason, Role
from calls.recordings import keep_recording
from calls.store import CallStore, CallStoreError

log = logging.getLogger("agent.calls")

# livekit-agents' per-message figures kept with each turn (seconds); its *_at timestamps become the turn's times.
METRIC_TIMES = ("started_speaking_at", "stopped_speaking_at")
def open_call_store(settings, *, migrate: bool = False) -> CallStore | None:
    """The call store the settings name (its schema brought up to date if `migrate`: the worker's main process
    does that once, before any call); None (logged) when it cannot be opened: calls are then answered
    unrecorded."""
    try:
        return CallStore.open(settings, migrate=migrate)
    except CallStoreError as error:
        log.error("%s: calls are answered but not recorded", error)
        return None


class CallRecord:
    """Writes one call; begin() it when the caller is there, attach() the session, end() the paths with no session.
    Every method returns at once; `flush()` waits for the writes queued so far."""

    def __init__(self, store: CallStore | None, *, recordings_dir: Path | None = None) -> None:
        self.store = store
        self.call_id: str | None = None
        self.recordings_dir = recordings_dir
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="call-record")
        self._noted: tuple[EndReason, str | None] | None = None
        self._pending_intents: dict[str, int] = {}   # a user turn's text -> its seq, until the policy decides
        self._intents: dict[str, Any] = {}           # the policy's intent for a user text not yet written
        self._failed = False

    # --- the call's start and end -------------------------------------------------------------------------------------
    def begin(self, ctx: JobContext, participant, *, is_phone: bool, settings, providers,
              started_ago: float = 0.0) -> None:
        """The call's record, started `started_ago` seconds ago (when its room was made)."""
        attributes = participant.attributes
        started = datetime.now(UTC) - timedelta(seconds=started_ago)
        self._start(settings, providers, "", room=ctx.room.name, kind=CallKind.phone if is_phone else CallKind.web,
                    caller_number=attributes.get("sip.phoneNumber") if is_phone else None,
                    dialled_number=attributes.get("sip.trunkPhoneNumber") if is_phone else None,
                    trunk_id=attributes.get("sip.trunkID") if is_phone else None, started_at=started)

    def begin_outbound(self, ctx: JobContext, number: str, *, settings, providers) -> None:
        """The record of a call the assistant places to `number` (agent/outbound.py)."""
        self._start(settings, providers, " (outbound)", room=ctx.room.name, kind=CallKind.outbound,
                    caller_number=number, dialled_number=number, started_at=datetime.now(UTC))

    def _start(self, settings, providers, what: str, **fields) -> None:
        fields.update(provider=providers.name,
                      llm_model=settings.local_llm_model if providers.name == "local" else providers.llm_model)

        def start() -> None:
            self.call_id = self.store.start_call(**fields)
            log.info("call record %s%s", self.call_id, what)
        self._write(start)

    def note_end(self, reason: EndReason | None, detail: str | None = None) -> None:
        """Our code is ending the call this way (None: no longer, a transfer that failed, say)."""
        self._noted = (reason, detail) if reason else None

    def said(self, text: str) -> None:
        """A sentence spoken outside the session (the busy and apology messages)."""
        at = datetime.now(UTC)
        self._write(lambda: self.store.add_turn(self.call_id, role=Role.assistant, text=text, ended_at=at))

    def end(self, reason: EndReason, detail: str | None = None) -> None:
        self._write(lambda: self.store.end_call(self.call_id, reason, detail))

    def message_taken(self, message, reason: MessageReason, finished: bool = True) -> None:
        """A message the caller left (agent/take_message.py). Where it cannot be stored, the agent's log (private
        to its user) keeps it, so the business still gets it."""
        text = message.text if finished else f"(the call ended before the message was finished) {message.text}"
        at = datetime.now(UTC)

        def add() -> None:
            try:
                self.store.add_message(self.call_id, caller_name=message.caller_name,
                                       callback_number=message.callback_number, text=text.strip(), reason=reason,
                                       taken_at=at)
            except Exception:
                self._log_message(message.caller_name, message.callback_number, text)
                raise
        if self.store is None or self._failed:
            self._log_message(message.caller_name, message.callback_number, text)
        else:
            self._write(add)

    def _log_message(self, name: str, number: str, text: str) -> None:
        log.error("a message could not be stored in the call store; it was: name %r, number %r, message %r",
                  name, number, text)

    def _on_close(self, event) -> None:
        if self._noted:
            self.end(*self._noted)
        elif event.reason == CloseReason.PARTICIPANT_DISCONNECTED:
            self.end(EndReason.caller_hung_up)
        elif event.reason == CloseReason.ERROR or event.error is not None:
            self.end(EndReason.error, _error_text(event.error))
        elif event.reason == CloseReason.JOB_SHUTDOWN:
            self.end(EndReason.error, "the agent shut down during the call")
        else:  # USER_INITIATED, TASK_COMPLETED: our own code ended the session
            self.end(EndReason.assistant_ended)

    # --- the session's events -----------------------------------------------------------------------------------------
    def attach(self, session: AgentSession, ctx: JobContext, *, answered: bool = True) -> None:
        """Turns, tool runs and the end from `session`, which has just started (the assistant picked up, unless
        `answered` is False: a call we place is answered later, `answered()`); the recording, if the session makes
        one, from the job's session folder."""
        if answered:
            self.answered()
        session.on("conversation_item_added", self._on_item)
        session.on("function_tools_executed", self._on_tools)
        session.on("close", self._on_close)
        if session.options.recording_options.get("audio") and self.recordings_dir is not None:
            audio = ctx.session_directory / "audio.ogg"
            # The recorder has written and closed the file when "close" is emitted; the job's temporary folder
            # goes with the process, so it is copied out now.
            session.on("close", lambda _event: self._write(lambda: self._keep(audio)))

    def answered(self) -> None:
        at = datetime.now(UTC)
        self._write(lambda: self.store.mark_answered(self.call_id, at))

    def _on_item(self, event) -> None:
        item = event.item
        if not isinstance(item, llm.ChatMessage) or item.role not in ("user", "assistant"):
            return
        text = item.text_content or ""
        metrics = dict(item.metrics or {})
        started, ended = (_time(metrics.get(name)) for name in METRIC_TIMES)
        figures = {name: round(value, 4) for name, value in metrics.items()
                   if name not in METRIC_TIMES and isinstance(value, (int, float))}
        if item.role == "user" and item.transcript_confidence is not None:  # how sure the STT was (agent/stt.py)
            figures["transcript_confidence"] = round(item.transcript_confidence, 4)
        fields = dict(role=Role(item.role), text=text, started_at=started, ended_at=ended or _time(item.created_at),
                      interrupted=bool(item.interrupted), metrics=figures or None)

        def add() -> None:  # the intents' two tables are the writer thread's alone
            intent = self._intents.pop(text, None) if item.role == "user" else None
            seq = self.store.add_turn(self.call_id, **fields, intent=intent.name if intent else None,
                                      intent_confidence=_confidence(intent))
            if item.role == "user" and intent is None:
                self._pending_intents[text] = seq
        self._write(add)

    def intent_decided(self, words: str, intent) -> None:
        """The turn policy's intent for the caller's words (PhoneAssistant.llm_node reports it), stored with that
        user turn: now if the turn is written already, else when it is (a preemptive generation decides first)."""
        def attach() -> None:
            seq = self._pending_intents.pop(words, None)
            if seq is None:
                self._intents[words] = intent
            else:
                self.store.set_turn_intent(self.call_id, seq, intent.name, _confidence(intent))
        self._write(attach)

    def _on_tools(self, event) -> None:
        for call, output in zip(event.function_calls, event.function_call_outputs):
            fields = dict(role=Role.tool, tool_name=call.name, tool_args=_arguments(call.arguments),
                          text=str(output.output) if output is not None else "", ended_at=_time(event.created_at))
            self._write(lambda fields=fields: self.store.add_turn(self.call_id, **fields))

    def _keep(self, audio: Path) -> None:
        if not audio.exists():
            log.warning("call record %s: the session wrote no recording", self.call_id)
            return
        kept = keep_recording(audio, self.recordings_dir, self.call_id)
        self.store.set_recording(self.call_id, kept)

    # --- the writer ---------------------------------------------------------------------------------------------------
    def _write(self, write: Callable[[], Any]) -> None:
        if self.store is None or self._failed:
            return
        self._writer.submit(self._run, write)

    def _run(self, write: Callable[[], Any]) -> None:
        if self._failed:
            return
        try:
            write()
        except Exception as error:  # the store down, a full disk: the record is lost, never the call
            self._failed = True
            log.error("call record %s: could not write to the call store (%s); the rest of this call is not "
                      "recorded", self.call_id, _error_text(error))

    async def flush(self) -> None:
        """Waits for every write queued so far (the job's shutdown callback calls this)."""
        await asyncio.get_running_loop().run_in_executor(self._writer, lambda: None)

    async def aclose(self) -> None:
        await self.flush()
        self._writer.shutdown(wait=False)


def _time(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if isinstance(epoch, (int, float)) and epoch > 0 else None


def _confidence(intent) -> float | None:
    return round(float(intent.confidence), 4) if intent is not None else None


def _arguments(arguments: str) -> dict[str, Any]:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return {"raw": arguments}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _error_text(error: BaseException | None) -> str | None:
    if error is None:
        return None
    return one_line(getattr(error, "error", None) or error)  # livekit-agents wraps the cause in .error
