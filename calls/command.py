"""`python cli.py calls ...`: read the call store.

    calls list [--since 2h|2026-11-25] [--number +1555...] [--limit N] [--json]
    calls show ID [--json]          (ID: the whole id, or its first characters)
    calls export --format jsonl|csv [--output FILE] [--since ...] [--number ...]
    calls deliver                   (send the end-of-call webhooks still pending now)

and `python cli.py messages [--open] [--since 1d] [--limit N] [--json] [--done ID]`: the messages callers left.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stack.errors import StackError

calls_app = typer.Typer(help="Every call on record: list, show a transcript, export.", no_args_is_help=True)
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# livekit-agents' figures shown beside a turn, shortest name first.
SHOWN_METRICS = (("e2e_latency", "e2e"), ("end_of_turn_delay", "end of turn"), ("transcription_delay", "stt"),
                 ("llm_node_ttft", "llm ttft"), ("tts_node_ttfb", "tts ttfb"))
CSV_CALL_COLUMNS = ("call_id", "started_at", "ended_at", "status", "kind", "caller_number", "dialled_number",
                    "end_reason", "end_detail", "summary", "outcome")
CSV_TURN_COLUMNS = ("seq", "role", "text", "turn_started_at", "turn_ended_at", "interrupted", "intent",
                    "intent_confidence", "tool_name", "tool_args", "metrics")

Since = Annotated[str | None, typer.Option(
    help="Only calls started since then: a duration back from now (30m, 2h, 7d) or a date/time "
         "(2026-11-25, 2026-11-25T14:30; UTC unless it says +hh:mm).")]
Number = Annotated[str | None, typer.Option(help="Only calls from or to a number containing this.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output (with each call's turns).")]


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """`2h` back from now, or an ISO date/time (UTC unless it carries an offset); StackError otherwise."""
    if text is None:
        return None
    text = text.strip()
    if match := DURATION.match(text):
        return (now or datetime.now(UTC)) - timedelta(**{UNITS[match[2]]: int(match[1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise StackError(f"--since {text!r} is not a time: use a duration like 30m, 2h or 7d, or a date like "
                         "2026-11-25 or 2026-11-25T14:30") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@contextmanager
def opened_store():
    from calls.store import CallStore
    from stack.settings import Settings

    store = CallStore.open(Settings.load())
    try:
        yield store
    finally:
        store.close()


@calls_app.command("list")
def list_calls(since: Since = None, number: Number = None, as_json: AsJson = False,
               limit: Annotated[int, typer.Option(min=1, help="At most this many calls, newest first.")] = 50):
    """The latest calls, newest first: when, who, how long, how it ended."""
    since_time = parse_since(since)
    with opened_store() as store:
        calls = store.list_calls(since=since_time, number=number, limit=limit, turns=True)
        shapes = [store.to_dict(call) for call in calls]
    if as_json:
        print(json.dumps(shapes, indent=2, ensure_ascii=False))
        return
    if not shapes:
        out.print("No calls" + (" match." if since or number else " yet."))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "started", "kind", "caller", "duration", "turns", "ended", "status"):
        table.add_column(column)
    for shape in shapes:
        table.add_row(shape["id"][:8], _local(shape["started_at"]), shape["kind"], shape["caller_number"] or "-",
                      _duration(shape["duration_s"]), str(len(shape["turns"])), escape(_end(shape)),
                      shape["status"].replace("_", " "))
    out.print(table)


@calls_app.command("show")
def show_call(call_id: Annotated[str, typer.Argument(metavar="ID", help="The call's id, or its first characters.")],
              as_json: AsJson = False):
    """One call: its details and the transcript, turn by turn, with livekit-agents' latency figures."""
    with opened_store() as store:
        shape = store.to_dict(store.get_call(call_id.strip()))
    if as_json:
        print(json.dumps(shape, indent=2, ensure_ascii=False))
        return
    details = [("call", shape["id"]), ("kind", shape["kind"]), ("caller", shape["caller_number"]),
               ("dialled", shape["dialled_number"]), ("trunk", shape["trunk_id"]),
               ("started", _local(shape["started_at"])), ("answered", _local(shape["answered_at"])),
               ("ended", _local(shape["ended_at"]) if shape["ended_at"] else shape["status"].replace("_", " ")),
               ("end", _end(shape)), ("duration", _duration(shape["duration_s"])),
               ("model", f"{shape['provider'] or '-'} {shape['llm_model'] or ''}".strip()),
               ("summary", shape["summary"]), ("outcome", shape["outcome"]), ("recording", shape["recording_path"])]
    for label, value in details:
        if value:
            out.print(f"{label:>9}: {escape(str(value))}", highlight=False)
    out.print()
    started = datetime.fromisoformat(shape["started_at"])
    for turn in shape["turns"]:
        out.print(_transcript_line(turn, started), highlight=False, soft_wrap=True)
    if not shape["turns"]:
        out.print("(no turns recorded)")
    for message in shape["messages"]:
        out.print(f"\nmessage: {escape(_message_line(message))}", highlight=False, soft_wrap=True)


def list_messages(
    since: Annotated[str | None, typer.Option(help="Only messages left since then: 30m, 2h, 7d, or a date/time.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many messages, newest first.")] = 50,
    open_only: Annotated[bool, typer.Option("--open", help="Only those nobody has dealt with yet.")] = False,
    done: Annotated[int | None, typer.Option("--done", metavar="ID", help="Mark message ID as dealt with.")] = None,
):
    """The messages callers left (when no one could take their call), newest first: who, a number to call back,
    and what they said. `calls show ID` shows the whole call; `--done ID` marks one as dealt with."""
    if done is not None:
        with opened_store() as store:
            changed = store.mark_message_handled(done)
        out.print(f"message {done} marked as dealt with" if changed else f"message {done} was already dealt with")
        return
    since_time = parse_since(since)
    with opened_store() as store:
        messages = [message.to_dict() for message in store.list_messages(since=since_time, limit=limit,
                                                                          open_only=open_only)]
    if as_json:
        print(json.dumps(messages, indent=2, ensure_ascii=False))
        return
    if not messages:
        out.print("No open messages." if open_only else "No messages" + (" since then." if since else " yet."))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "left", "call", "name", "call back on", "message", "why", "dealt with"):
        table.add_column(column, overflow="fold")
    for message in messages:
        table.add_row(str(message["id"]), _local(message["taken_at"]), message["call_id"][:8],
                      escape(message["caller_name"] or "-"), message["callback_number"] or "-",
                      escape(message["text"]), message["reason"].replace("_", " "),
                      _local(message["handled_at"]) if message["handled_at"] else "no")
    out.print(table)


def _message_line(message: dict) -> str:
    number = f" on {message['callback_number']}" if message["callback_number"] else ""
    return f"{message['caller_name'] or '(no name)'}{number}: {message['text']} ({message['reason'].replace('_', ' ')})"


@calls_app.command("export")
def export_calls(
    export_format: Annotated[str, typer.Option("--format", help="jsonl: one call (with its turns) per line; "
                                                                "csv: one row per turn, with its call's columns.")],
    output: Annotated[Path | None, typer.Option(
        help="Write to this file (mode 600) instead of standard output.")] = None,
    since: Since = None, number: Number = None,
):
    """Every call (or those since/with a number), oldest first, for a spreadsheet or another system."""
    if export_format not in ("jsonl", "csv"):
        raise StackError(f"--format {export_format!r} is not one of jsonl, csv")
    since_time = parse_since(since)
    with opened_store() as store, _destination(output) as stream:
        count = write_export(store, stream, export_format, since=since_time, number=number)
    if output:
        err.print(f"exported {count} calls to {escape(str(output))}", highlight=False)


@calls_app.command("deliver")
def deliver_webhooks():
    """Sends the end-of-call webhooks still pending (a stopped agent's) now, with CALL_WEBHOOK_ATTEMPTS tries each
    (tries made earlier count), and says how each went. The agent also does this when it starts."""
    import asyncio

    from stack.settings import Settings

    from .aftercall import AfterCall

    settings = Settings.load()
    if not settings.call_webhook_url:
        raise StackError("CALL_WEBHOOK_URL is not set: there is nowhere to send the calls (.env.example)")
    with opened_store() as store:
        sent = asyncio.run(AfterCall(store, settings).retry_pending(older_than=timedelta(0)))
        for call_id, delivery in sent:
            state = "delivered" if delivery and delivery.delivered else "failed"
            detail = f" ({delivery.last_error})" if delivery and delivery.last_error else ""
            out.print(f"{call_id}: {state} after {delivery.attempts if delivery else 0} tries{escape(detail)}",
                      highlight=False)
    if not sent:
        out.print("no end-of-call webhooks are pending")


def write_export(store, stream, export_format: Literal["jsonl", "csv"], **filters: Any) -> int:
    writer = csv.writer(stream) if export_format == "csv" else None
    if writer:
        writer.writerow([*CSV_CALL_COLUMNS, *CSV_TURN_COLUMNS])
    count = 0
    for call in store.iter_calls(**filters):
        shape = store.to_dict(call)
        count += 1
        if writer is None:
            stream.write(json.dumps(shape, ensure_ascii=False) + "\n")
            continue
        head = [shape["id"] if column == "call_id" else shape[column] for column in CSV_CALL_COLUMNS]
        for turn in shape["turns"] or [None]:
            writer.writerow([*head, *_turn_cells(turn)])
    return count


def _turn_cells(turn: dict | None) -> list:
    if turn is None:
        return [""] * len(CSV_TURN_COLUMNS)
    cells = {**turn, "turn_started_at": turn["started_at"], "turn_ended_at": turn["ended_at"],
             "tool_args": json.dumps(turn["tool_args"]) if turn["tool_args"] else "",
             "metrics": json.dumps(turn["metrics"]) if turn["metrics"] else ""}
    return ["" if cells[column] is None else cells[column] for column in CSV_TURN_COLUMNS]


@contextmanager
def _destination(output: Path | None):
    if output is None:
        yield sys.stdout
        return
    try:
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # callers' words and numbers
    except OSError as error:
        raise StackError(f"cannot write {output}: {error.strerror}") from None
    with open(descriptor, "w", newline="", encoding="utf-8") as stream:
        yield stream


def _transcript_line(turn: dict, started: datetime) -> str:
    moment = turn["started_at"] or turn["ended_at"]
    offset = (datetime.fromisoformat(moment) - started).total_seconds() if moment else None
    at = f"[{int(offset // 60):02d}:{offset % 60:04.1f}]" if offset is not None and offset >= 0 else "[  -  ]"
    who = {"user": "caller", "assistant": "assistant", "tool": "tool"}[turn["role"]]
    if turn["role"] == "tool":
        said = f"{turn['tool_name']}({json.dumps(turn['tool_args'] or {})}) -> {turn['text']}"
    else:
        said = turn["text"]
    notes = []
    if turn["intent"]:
        notes.append(f"intent {turn['intent']} {turn['intent_confidence']:.2f}" if turn["intent_confidence"]
                     is not None else f"intent {turn['intent']}")
    metrics = turn["metrics"] or {}
    notes += [f"{label} {metrics[name]:.2f} s" for name, label in SHOWN_METRICS if name in metrics]
    if turn["interrupted"]:
        notes.append("interrupted")
    suffix = f"  ({', '.join(notes)})" if notes else ""
    return f"{at} {who:>9}: {escape(said)}{escape(suffix)}"


def _local(moment: str | None) -> str:
    return datetime.fromisoformat(moment).astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def _end(shape: dict) -> str:
    reason = shape["end_reason"]
    if not reason:
        return "-"
    detail = shape["end_detail"]
    return f"{reason.replace('_', ' ')} ({detail})" if detail else reason.replace("_", " ")
