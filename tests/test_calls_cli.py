"""`python cli.py calls list | show | export` on SQLite and on PostgreSQL (DATABASE_URL): the commands run in this
process (a cold `python cli.py` costs seconds), and once as a user runs them, for the one-line error."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from calls.command import parse_since
from calls.store import CallStore
from cli import app
from stack.errors import StackError
from stack.settings import REPO_ROOT

pytestmark = pytest.mark.unit


@pytest.fixture
def calls(call_store_url, tmp_path):
    """A store with a finished phone call of four turns, an old one, and a web conversation still under way; the
    `cli.py calls` runner that reads it."""
    now = datetime.now(UTC)
    with CallStore.at(call_store_url) as store:
        old = store.start_call(room="call-old", kind="phone", caller_number="+15550999", started_at=now - timedelta(
            days=3))
        store.end_call(old, "busy", at=now - timedelta(days=3) + timedelta(seconds=9))
        phone = store.start_call(room="call-+15550123_x", kind="phone", caller_number="+15550123",
                                 dialled_number="+15550100", trunk_id="ST_abc", provider="local",
                                 llm_model="qwen2.5-coder-0.5b", started_at=now - timedelta(minutes=5))
        store.add_turn(phone, role="assistant", text="Harbor Dental, how can I help?",
                       ended_at=now - timedelta(minutes=5) + timedelta(seconds=2))
        store.add_turn(phone, role="user", text="When are you [bold]open[/bold]?", intent="hours",
                       intent_confidence=0.91, started_at=now - timedelta(minutes=4),
                       metrics={"end_of_turn_delay": 0.41, "transcription_delay": 0.2})
        store.add_turn(phone, role="tool", text="It is 10 am.", tool_name="get_current_time", tool_args={})
        store.add_turn(phone, role="assistant", text="Monday to Friday, 9 to 5.", interrupted=True,
                       started_at=now - timedelta(minutes=4) + timedelta(seconds=2),
                       metrics={"e2e_latency": 1.62, "llm_node_ttft": 0.8, "tts_node_ttfb": 0.31})
        store.end_call(phone, "caller_hung_up", at=now - timedelta(minutes=3))
        web = store.start_call(room="web-1", kind="web", started_at=now - timedelta(minutes=1))

    def run(*args: str):
        """`cli.py calls ARGS`: its exit code, stdout and stderr, and the exception it ended with."""
        return CliRunner().invoke(app, ["calls", *args], env={
            "PHONE_RUN_DIR": str(tmp_path / "run"), "PHONE_ENV_FILE": str(tmp_path / "no.env"),
            "DATABASE_URL": call_store_url})
    return run, {"old": old, "phone": phone, "web": web}


def test_list_shows_each_call_with_its_turns_and_figures(calls):
    run, ids = calls
    listed = run("list", "--json")
    assert listed.exit_code == 0, listed.output
    shapes = json.loads(listed.stdout)
    assert [shape["id"] for shape in shapes] == [ids["web"], ids["phone"], ids["old"]]  # newest first
    phone = shapes[1]
    assert (phone["caller_number"], phone["dialled_number"], phone["end_reason"], phone["status"]) == (
        "+15550123", "+15550100", "caller_hung_up", "ended")
    assert [turn["role"] for turn in phone["turns"]] == ["assistant", "user", "tool", "assistant"]
    assert phone["turns"][3]["metrics"]["e2e_latency"] == 1.62 and phone["turns"][1]["intent"] == "hours"
    assert shapes[0]["status"] == "in_progress" and shapes[0]["ended_at"] is None

    table = run("list")
    assert table.exit_code == 0, table.output
    rows = {line.split()[0]: line for line in table.stdout.splitlines()[1:]}
    assert set(rows) == {ids["web"][:8], ids["phone"][:8], ids["old"][:8]}
    assert "caller hung up" in rows[ids["phone"][:8]] and "+15550123" in rows[ids["phone"][:8]]
    assert "in progress" in rows[ids["web"][:8]]


def test_list_filters_by_time_and_number(calls):
    run, ids = calls
    recent = json.loads(run("list", "--json", "--since", "1d").stdout)
    assert [shape["id"] for shape in recent] == [ids["web"], ids["phone"]]
    by_number = json.loads(run("list", "--json", "--number", "0999").stdout)
    assert [shape["id"] for shape in by_number] == [ids["old"]]
    assert run("list", "--number", "+19990000").stdout.strip() == "No calls match."


def test_show_prints_the_transcript_with_latency(calls):
    run, ids = calls
    shown = run("show", ids["phone"][:8])
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert "caller: +15550123" in text and "end: caller hung up" in text and "trunk: ST_abc" in text
    lines = [line for line in text.splitlines() if line.startswith("[")]
    assert len(lines) == 4
    assert "caller: When are you [bold]open[/bold]?" in lines[1]  # the caller's words as said, no markup
    assert "intent hours 0.91" in lines[1] and "end of turn 0.41 s" in lines[1]
    assert "get_current_time({}) -> It is 10 am." in lines[2]
    assert "e2e 1.62 s" in lines[3] and "llm ttft 0.80 s" in lines[3] and "interrupted" in lines[3]
    assert lines[3].startswith("[01:02.0]")  # two seconds into the minute after the start

    as_json = json.loads(run("show", ids["phone"], "--json").stdout)
    assert as_json["id"] == ids["phone"] and len(as_json["turns"]) == 4


def test_export_writes_every_call_oldest_first(calls, tmp_path):
    run, ids = calls
    lines = run("export", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [ids["old"], ids["phone"], ids["web"]]

    target = tmp_path / "calls.csv"
    exported = run("export", "--format", "csv", "--output", str(target))
    assert exported.exit_code == 0, exported.output
    assert "exported 3 calls" in exported.stderr and target.stat().st_mode & 0o077 == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 1 + 4 + 1  # a call with no turns still has its row
    phone_rows = [row for row in rows if row["call_id"] == ids["phone"]]
    assert [row["role"] for row in phone_rows] == ["assistant", "user", "tool", "assistant"]
    assert json.loads(phone_rows[3]["metrics"])["e2e_latency"] == 1.62


@pytest.mark.parametrize(("args", "message"), [
    (("show", "ffffffff"), "no call with id ffffffff"),
    (("list", "--since", "yesterday"), "--since 'yesterday' is not a time"),
    (("export", "--format", "xml"), "--format 'xml' is not one of jsonl, csv"),
])
def test_bad_input_is_refused_in_words(calls, args, message):
    run, _ = calls
    failed = run(*args)
    assert isinstance(failed.exception, StackError) and failed.stdout == ""  # main() prints it as one line
    assert message in str(failed.exception) and "\n" not in str(failed.exception)


def test_an_unreachable_database_gets_one_line_without_its_password(tmp_path):
    """As a user runs it: main() turns the store's error into one line and exit status 1."""
    failed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "cli.py"), "calls", "list"], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PHONE_RUN_DIR": str(tmp_path), "PHONE_ENV_FILE": str(tmp_path / "no.env"),
             "DATABASE_URL": f"postgresql://calls:hunter2@/calls?host={tmp_path}", "PYTHONPATH": str(REPO_ROOT)})
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1, failed.stderr
    assert "unreachable (check DATABASE_URL)" in failed.stderr and "hunter2" not in failed.stderr


def test_since_reads_durations_and_dates():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now) == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert parse_since("7d", now) == datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
    assert parse_since("2026-11-25") == datetime(2026, 11, 25, tzinfo=UTC)
    assert parse_since("2026-11-25T14:30+01:00") == datetime(2026, 11, 25, 13, 30, tzinfo=UTC)
    with pytest.raises(StackError):
        parse_since("soon")


def test_messages_are_listed_shown_with_their_call_and_marked_dealt_with(call_store_url, tmp_path):
    with CallStore.at(call_store_url) as store:
        call = store.start_call(room="call-+15550123_x", kind="phone", caller_number="+15550123")
        first = store.add_message(call, caller_name="Ana Lima", callback_number="5550199",
                                  text="Call me about the [bold]cake[/bold].", reason="transfer_failed")

    def run(*args: str):
        return CliRunner().invoke(app, list(args), env={
            "PHONE_RUN_DIR": str(tmp_path / "run"), "PHONE_ENV_FILE": str(tmp_path / "no.env"),
            "DATABASE_URL": call_store_url})

    listed = run("messages")
    assert listed.exit_code == 0, listed.output
    assert "Ana Lima" in listed.output and "5550199" in listed.output and "[bold]cake[/bold]" in listed.output
    assert "transfer failed" in listed.output
    assert json.loads(run("messages", "--json").output)[0]["callback_number"] == "5550199"
    assert "message: Ana Lima on 5550199" in run("calls", "show", call).output
    assert "marked as dealt with" in run("messages", "--done", str(first)).output
    assert "already" in run("messages", "--done", str(first)).output
    assert "No open messages." in run("messages", "--open").output
    unknown = run("messages", "--done", "999")
    assert unknown.exit_code != 0 and "no message with id 999" in str(unknown.exception or unknown.output)
