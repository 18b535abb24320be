"""The call store: every call and each of its turns, written as they happen.

SQLite file `<run dir>/calls.sqlite3` by default (WAL, so the agent's job processes write while the CLI reads);
PostgreSQL (psycopg 3) when DATABASE_URL is set. open() brings the schema to the newest Alembic revision
(calls/migrations), under a lock so processes opening at once migrate once.

Every method is synchronous and short; the agent calls them from a thread of its own (agent/call_record.py), never
on the audio path. Objects handed back are detached copies: read them freely, change the store through methods.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Select, create_engine, event, func, or_, select, text, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from stack.errors import StackError

from .models import Call, CallKind, EndReason, Message, MessageReason, Role, Turn, WebhookState, now

log = logging.getLogger("calls")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_FILE = "calls.sqlite3"
# A call read whole: its turns and the messages left in it, loaded with it (a detached copy cannot load them later).
WHOLE_CALL = (selectinload(Call.turns), selectinload(Call.messages))
# A PostgreSQL advisory lock key of our own (any 64-bit number): one migrating process at a time.
MIGRATION_LOCK_KEY = 0x63616C6C73746F72  # "callstor"


class CallStoreError(StackError):
    """The store cannot be opened or used; the message is one line, with no password in it."""


class UnknownCall(CallStoreError):
    """No call has this id (or id prefix)."""


class UnknownMessage(CallStoreError):
    """No message has this id."""


def database_url(settings) -> URL:
    """DATABASE_URL (postgresql://... runs on psycopg 3), or the SQLite file in the run folder."""
    if not settings.database_url:
        return URL.create("sqlite", database=str(settings.run_dir / SQLITE_FILE))
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        raise CallStoreError("DATABASE_URL is not a database URL: use postgresql://user:password@host/db") from None
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    return url


class CallStore:
    """Open with CallStore.open(settings) (or CallStore.at(url) in tests); close() when done."""

    def __init__(self, engine: Engine, unfinished_after: timedelta | None = None) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # A call with no end this long after its start was never closed (its process was killed): "unfinished".
        self.unfinished_after = unfinished_after

    # --- opening ------------------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, settings, *, migrate: bool = True) -> CallStore:
        """The store the settings name, its schema at the newest revision; CallStoreError if it is unreachable."""
        longest = settings.sip_max_call_duration or 24 * 3600  # 0: livekit-sip's own limit, 24 h
        return cls.at(database_url(settings), migrate=migrate, unfinished_after=timedelta(seconds=longest + 60))

    @classmethod
    def at(cls, url: URL | str, *, migrate: bool = True, unfinished_after: timedelta | None = None) -> CallStore:
        url = make_url(url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            _private_file(Path(url.database))
        engine = create_engine(url, pool_pre_ping=True, **_engine_options(url))
        if url.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine, unfinished_after)
        try:
            if migrate:
                store.migrate()
            else:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            engine.dispose()
            where = "DATABASE_URL" if url.get_backend_name() != "sqlite" else "the run folder"
            raise CallStoreError(f"the call store at {store.url} is unreachable (check {where}): "
                                 f"{_first_line(error)}") from None
        return store

    @property
    def url(self) -> str:
        """The database URL with any password hidden (for messages)."""
        return self.engine.url.render_as_string(hide_password=True)

    def migrate(self) -> None:
        """Brings the schema to the newest revision; one process at a time (a file lock on SQLite, an advisory
        lock on PostgreSQL)."""
        from alembic import command  # only here: it costs every agent process a second to import
        from alembic.config import Config

        logging.getLogger("alembic").setLevel(logging.WARNING)  # not a line per revision in every log
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self._migration_lock(), self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        database = self.engine.url.database
        if self.engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate-lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> CallStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # --- writing a call as it happens ---------------------------------------------------------------------------------
    def start_call(self, *, room: str, kind: CallKind | str, caller_number: str | None = None,
                   dialled_number: str | None = None, trunk_id: str | None = None, provider: str | None = None,
                   llm_model: str | None = None, started_at: datetime | None = None,
                   call_id: str | None = None) -> str:
        """A new call record (no end yet: in progress); its id."""
        call = Call(room=room, kind=CallKind(kind).value, caller_number=caller_number,
                    dialled_number=dialled_number, trunk_id=trunk_id, provider=provider, llm_model=llm_model,
                    started_at=started_at or now(), webhook_attempts=0)
        if call_id:
            call.id = call_id
        with self._session() as session:
            session.add(call)
            session.flush()
            return call.id

    def mark_answered(self, call_id: str, at: datetime | None = None) -> None:
        """The assistant picked up (its session started)."""
        self._update(call_id, answered_at=at or now())

    def add_turn(self, call_id: str, *, role: Role | str, text: str = "", started_at: datetime | None = None,
                 ended_at: datetime | None = None, interrupted: bool = False, intent: str | None = None,
                 intent_confidence: float | None = None, tool_name: str | None = None,
                 tool_args: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None) -> int:
        """Appends one turn (committed at once); its sequence number in the call, from 0."""
        with self._session() as session:
            if session.get(Call, call_id) is None:
                raise UnknownCall(f"no call with id {call_id}")
            last = session.scalar(select(func.max(Turn.seq)).where(Turn.call_id == call_id))
            seq = 0 if last is None else last + 1
            session.add(Turn(call_id=call_id, seq=seq, role=Role(role).value, text=text or "",
                             started_at=started_at, ended_at=ended_at, interrupted=interrupted, intent=intent,
                             intent_confidence=intent_confidence, tool_name=tool_name, tool_args=tool_args,
                             metrics=metrics or None))
            return seq

    def set_turn_intent(self, call_id: str, seq: int, intent: str | None, confidence: float | None) -> None:
        """The intent of a turn written before it was decided."""
        with self._session() as session:
            done = session.execute(update(Turn).where(Turn.call_id == call_id, Turn.seq == seq).values(
                intent=intent, intent_confidence=confidence))
            if done.rowcount == 0:
                raise UnknownCall(f"no turn {seq} in call {call_id}")

    def end_call(self, call_id: str, reason: EndReason | str, detail: str | None = None,
                 at: datetime | None = None) -> bool:
        """Records how the call ended; the first end recorded stands (a transfer then the caller's line dropping
        stays "transferred"). True if this one was recorded."""
        reason = EndReason(reason).value
        with self._session() as session:
            done = session.execute(update(Call).where(Call.id == call_id, Call.ended_at.is_(None)).values(
                ended_at=at or now(), end_reason=reason, end_detail=detail))
            if done.rowcount == 0 and session.get(Call, call_id) is None:
                raise UnknownCall(f"no call with id {call_id}")
            return done.rowcount == 1

    def add_message(self, call_id: str, *, caller_name: str, callback_number: str, text: str,
                    reason: MessageReason | str, taken_at: datetime | None = None) -> int:
        """A message the caller left during this call; its id."""
        with self._session() as session:
            if session.get(Call, call_id) is None:
                raise UnknownCall(f"no call with id {call_id}")
            message = Message(call_id=call_id, caller_name=caller_name, callback_number=callback_number, text=text,
                              reason=MessageReason(reason).value, taken_at=taken_at or now())
            session.add(message)
            session.flush()
            return message.id

    def mark_message_handled(self, message_id: int, at: datetime | None = None) -> bool:
        """Marks a message as dealt with; False if it already was; UnknownMessage if there is none."""
        with self._session() as session:
            message = session.get(Message, message_id)
            if message is None:
                raise UnknownMessage(f"no message with id {message_id}: `python cli.py messages` lists them")
            if message.handled_at is not None:
                return False
            message.handled_at = at or now()
            return True

    def set_recording(self, call_id: str, path: str | Path | None) -> None:
        self._update(call_id, recording_path=str(path) if path else None)

    def set_summary(self, call_id: str, summary: str | None, outcome: str | None = None) -> None:
        self._update(call_id, summary=summary, outcome=outcome)

    def set_webhook_state(self, call_id: str, state: WebhookState | str, *, error: str | None = None,
                          attempted: bool = False) -> None:
        """The end-of-call webhook's delivery state; attempted=True counts one more delivery attempt."""
        values: dict[str, Any] = {"webhook_state": WebhookState(state).value, "webhook_last_error": error}
        if attempted:
            values["webhook_attempts"] = Call.webhook_attempts + 1
        self._update(call_id, **values)

    def _update(self, call_id: str, **values: Any) -> None:
        with self._session() as session:
            if session.execute(update(Call).where(Call.id == call_id).values(**values)).rowcount == 0:
                raise UnknownCall(f"no call with id {call_id}")

    # --- reading ------------------------------------------------------------------------------------------------------
    def get_call(self, call_id: str) -> Call:
        """The call with this id, or the one call whose id starts with it (at least 4 characters), with its turns;
        UnknownCall otherwise."""
        with self._session() as session:
            call = session.get(Call, call_id, options=list(WHOLE_CALL))
            if call is None and len(call_id) >= 4:
                found = session.scalars(select(Call).where(Call.id.startswith(call_id, autoescape=True))
                                        .options(*WHOLE_CALL).limit(2)).all()
                if len(found) > 1:
                    raise UnknownCall(f"more than one call has an id starting with {call_id}: give more of it")
                call = found[0] if found else None
            if call is None:
                raise UnknownCall(f"no call with id {call_id}")
            return call

    def list_calls(self, since: datetime | None = None, number: str | None = None, limit: int | None = 100,
                   *, turns: bool = False) -> list[Call]:
        """Calls started at or after `since`, from or to a number containing `number`, newest first."""
        query = _matching(since, number).order_by(Call.started_at.desc(), Call.id)
        if turns:
            query = query.options(*WHOLE_CALL)
        if limit is not None:
            query = query.limit(limit)
        with self._session() as session:
            return list(session.scalars(query))

    def list_messages(self, since: datetime | None = None, limit: int | None = 100, *,
                      open_only: bool = False) -> list[Message]:
        """Messages left at or after `since` (only those not yet handled, if `open_only`), newest first."""
        query = select(Message).order_by(Message.taken_at.desc(), Message.id.desc())
        if since is not None:
            query = query.where(Message.taken_at >= since)
        if open_only:
            query = query.where(Message.handled_at.is_(None))
        if limit is not None:
            query = query.limit(limit)
        with self._session() as session:
            return list(session.scalars(query))

    def ended_calls(self, rooms: Collection[str], ended_after: datetime) -> list[Call]:
        """The calls in these rooms that ended after `ended_after`, with their turns (the after-call work)."""
        if not rooms:
            return []
        query = (select(Call).where(Call.room.in_(list(rooms)), Call.ended_at >= ended_after)
                 .order_by(Call.ended_at).options(*WHOLE_CALL))
        with self._session() as session:
            return list(session.scalars(query))

    def pending_webhooks(self, ended_before: datetime, limit: int = 100) -> list[Call]:
        """Ended calls whose end-of-call webhook is still pending, that ended before `ended_before`."""
        query = (select(Call).where(Call.webhook_state == WebhookState.pending.value, Call.ended_at < ended_before)
                 .order_by(Call.ended_at).limit(limit))
        with self._session() as session:
            return list(session.scalars(query))

    def iter_calls(self, since: datetime | None = None, number: str | None = None,
                   batch: int = 200) -> Iterator[Call]:
        """Every matching call with its turns, oldest first, read `batch` at a time (exports)."""
        query = _matching(since, number).order_by(Call.started_at, Call.id).options(*WHOLE_CALL)
        offset = 0
        while True:
            with self._session() as session:
                calls = list(session.scalars(query.offset(offset).limit(batch)))
            yield from calls
            if len(calls) < batch:
                return
            offset += batch

    def status(self, call: Call, at: datetime | None = None) -> str:
        """ended; in_progress (no end yet); unfinished (no end, and older than any call can last: its process
        was killed)."""
        if call.ended_at is not None:
            return "ended"
        if self.unfinished_after and (at or now()) - call.started_at > self.unfinished_after:
            return "unfinished"
        return "in_progress"

    def to_dict(self, call: Call, *, turns: bool = True) -> dict[str, Any]:
        """The JSON shape of a call (and its turns): what `cli.py calls ... --json`, exports and the webhook give."""
        return call.to_dict(status=self.status(call), turns=turns)


def _private_file(path: Path) -> None:
    """The SQLite file, made mode 600 before SQLite first opens it (its -wal and -shm files take the same mode):
    it holds callers' numbers and words."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def _matching(since: datetime | None, number: str | None) -> Select:
    """Calls started at or after `since`, from or to a number containing `number` (taken literally: % and _ are
    no wildcards)."""
    query = select(Call)
    if since is not None:
        query = query.where(Call.started_at >= since)
    if number:
        query = query.where(or_(Call.caller_number.contains(number, autoescape=True),
                                Call.dialled_number.contains(number, autoescape=True)))
    return query


def _engine_options(url: URL) -> dict[str, Any]:
    if url.get_backend_name() == "sqlite":
        # Several processes write one file: wait for another's write instead of failing at once.
        return {"connect_args": {"timeout": 15}}
    return {"connect_args": {"connect_timeout": 10}}


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")     # readers never block the writer, and the reverse
    cursor.execute("PRAGMA synchronous=NORMAL")   # durable at each checkpoint; safe against a killed process
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _first_line(error: Exception) -> str:
    original = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return lines[0] if lines else type(original).__name__
