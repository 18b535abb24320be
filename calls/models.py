"""The call store's tables: one row per call, one per turn of it, one per message a caller left (SQLAlchemy 2
declarative).

Times are timezone-aware UTC in Python on every database (SQLite keeps them as naive UTC text). Every column that
can change the schema has an Alembic migration in calls/migrations/versions; change both together.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class EndReason(enum.StrEnum):
    """Why a call ended: stored as this text in calls.end_reason."""
    caller_hung_up = "caller_hung_up"
    assistant_ended = "assistant_ended"          # our end_call tool, or the goodbye after a silent caller
    transferred = "transferred"                  # end_detail: the number it went to
    busy = "busy"                                # all lines busy: told so and let go
    error = "error"                              # end_detail: what failed
    max_duration = "max_duration"                # the trunk's maximum call duration reached
    silence = "silence"                          # nobody spoke for AGENT_SILENCE_TIMEOUT twice
    rejected_repeat_caller = "rejected_repeat_caller"  # the caller already had AGENT_MAX_CALLS_PER_CALLER calls
    # Outbound calls (`cli.py dial`) that never became a conversation; end_detail: the SIP status or the error.
    no_answer = "no_answer"                      # rang out, or the other side timed out
    callee_busy = "callee_busy"                  # 486 Busy Here / 600 Busy Everywhere
    declined = "declined"                        # 603 Decline
    dial_failed = "dial_failed"                  # any other failure to connect
    no_free_line = "no_free_line"                # every line of the agent was in use: nothing was dialled
    voicemail_left = "voicemail_left"            # an answering machine: the message was left after its greeting
    voicemail_unavailable = "voicemail_unavailable"  # a machine that takes no message (mailbox full, not set up)


# Told by the code that ends a call, just before it does, why (the session's close reason cannot tell a goodbye from
# a transfer); None withdraws it (a transfer that failed). The agent's call record keeps the last one.
EndNote = Callable[[EndReason | None, str | None], None]


def no_note(_reason: EndReason | None, _detail: str | None = None) -> None:
    """The EndNote where no call is recorded (tests, the prompt-cache warm-up)."""


class CallKind(enum.StrEnum):
    phone = "phone"   # a SIP caller
    web = "web"       # the playground page (a web-... room)
    outbound = "outbound"  # a call the assistant placed (`cli.py dial`); caller_number: the number called


class Role(enum.StrEnum):
    user = "user"
    assistant = "assistant"
    tool = "tool"     # a function tool the assistant ran: tool_name, tool_args, its output in text


class WebhookState(enum.StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every database: SQLite's DateTime hands back naive values."""
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the call store takes timezone-aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def now() -> datetime:
    return datetime.now(UTC)


def new_call_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (Index("ix_calls_started_at", "started_at"), Index("ix_calls_caller_number", "caller_number"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_call_id)
    room: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))                      # CallKind
    caller_number: Mapped[str | None] = mapped_column(String(64))      # sip.phoneNumber
    dialled_number: Mapped[str | None] = mapped_column(String(64))     # sip.trunkPhoneNumber
    trunk_id: Mapped[str | None] = mapped_column(String(64))           # sip.trunkID
    started_at: Mapped[datetime] = mapped_column(default=now)
    answered_at: Mapped[datetime | None]                               # the agent's session started
    ended_at: Mapped[datetime | None]                                  # None: in progress, or never closed
    end_reason: Mapped[str | None] = mapped_column(String(32))         # EndReason
    end_detail: Mapped[str | None] = mapped_column(Text)               # transfer target, error text
    provider: Mapped[str | None] = mapped_column(String(64))           # openai, openai-compatible, local
    llm_model: Mapped[str | None] = mapped_column(String(128))
    summary: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(255))
    recording_path: Mapped[str | None] = mapped_column(Text)
    webhook_state: Mapped[str | None] = mapped_column(String(16))      # WebhookState; None: no webhook configured
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0)
    webhook_last_error: Mapped[str | None] = mapped_column(Text)

    turns: Mapped[list[Turn]] = relationship(back_populates="call", order_by="Turn.seq",
                                             cascade="all, delete-orphan", passive_deletes=True)
    messages: Mapped[list[Message]] = relationship(back_populates="call", order_by="Message.id",
                                                   cascade="all, delete-orphan", passive_deletes=True)

    def to_dict(self, *, status: str, turns: bool = True) -> dict[str, Any]:
        """The call as JSON-ready values (times ISO 8601 UTC); `status` from CallStore.status()."""
        shape = {column: _json_value(getattr(self, column)) for column in CALL_FIELDS}
        shape["status"] = status
        shape["duration_s"] = round((self.ended_at - self.started_at).total_seconds(), 3) if self.ended_at else None
        if turns:
            shape["turns"] = [turn.to_dict() for turn in self.turns]
            shape["messages"] = [message.to_dict() for message in self.messages]
        return shape


class Turn(Base):
    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("call_id", "seq", name="uq_turns_call_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)                          # 0, 1, 2 ... within the call
    role: Mapped[str] = mapped_column(String(16))                      # Role
    text: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    interrupted: Mapped[bool] = mapped_column(default=False)           # cut off by the caller or the hang-up
    intent: Mapped[str | None] = mapped_column(String(64))
    intent_confidence: Mapped[float | None] = mapped_column(Float)
    tool_name: Mapped[str | None] = mapped_column(String(128))
    tool_args: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # livekit-agents' own figures, in seconds: end_of_turn_delay, transcription_delay (user turns); llm_ttft,
    # tts_ttfb, e2e_latency (assistant turns)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    call: Mapped[Call] = relationship(back_populates="turns")

    def to_dict(self) -> dict[str, Any]:
        return {column: _json_value(getattr(self, column)) for column in TURN_FIELDS}


class Message(Base):
    """A message the caller left for the business (agent/take_message.py): who, a number to call back, and what."""
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_taken_at", "taken_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    taken_at: Mapped[datetime] = mapped_column(default=now)
    caller_name: Mapped[str] = mapped_column(Text, default="")
    callback_number: Mapped[str] = mapped_column(String(64), default="")  # digits as read back to the caller
    text: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(String(64), default="")  # why a message: MessageReason
    handled_at: Mapped[datetime | None]  # someone dealt with it (`cli.py messages --done ID`); None: open

    call: Mapped[Call] = relationship(back_populates="messages")

    def to_dict(self) -> dict[str, Any]:
        return {column: _json_value(getattr(self, column)) for column in MESSAGE_FIELDS}


class MessageReason(enum.StrEnum):
    asked = "asked"                          # the caller asked to leave one
    no_colleague = "no_colleague"            # a person was asked for and no transfer number is set
    transfer_failed = "transfer_failed"      # the transfer was refused or failed
    unanswered = "unanswered"                # a question the business's facts do not answer
    request = "request"                      # a booking, order or complaint only the staff can act on


# The JSON shapes' keys, in this order.
CALL_FIELDS = ("id", "room", "kind", "caller_number", "dialled_number", "trunk_id", "started_at", "answered_at",
               "ended_at", "end_reason", "end_detail", "provider", "llm_model", "summary", "outcome",
               "recording_path", "webhook_state", "webhook_attempts", "webhook_last_error")
TURN_FIELDS = ("seq", "role", "text", "started_at", "ended_at", "interrupted", "intent", "intent_confidence",
               "tool_name", "tool_args", "metrics")
MESSAGE_FIELDS = ("id", "call_id", "taken_at", "caller_name", "callback_number", "text", "reason", "handled_at")


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
