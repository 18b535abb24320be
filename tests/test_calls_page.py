"""The Calls page in real Chromium while a real phone call is placed through the whole stack (softphone ->
livekit-sip -> LiveKit -> our agent on the local models, which records the call in the store): the page shows the
call in progress, then ended, with its transcript, latency chart and the summary the LLM wrote after the call; and
the agent's end-of-call webhook reaches a receiver on 127.0.0.1, signed with the stack's CALL_WEBHOOK_SECRET.
    scripts/netns.sh .venv/bin/python -m pytest tests/test_calls_page.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from urllib.parse import urlparse

import pytest

from calls.store import CallStore
from stack import lifecycle
from stack.settings import REPO_ROOT
from tests.conftest import SHARED_WEBHOOK_URL
from tests.support.stack import ARTIFACTS
from tests.support.webhook_receiver import Receiver, ReceiverThread
from tools.softphone import CallOptions, place_call_in_subprocess

CHROMIUM = shutil.which("chromium")
NODE_MODULES = REPO_ROOT / "playground" / "web" / "node_modules"
CALLER = "+15550146"  # this test's own caller number (no other test uses it): the page is filtered to it


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM or not NODE_MODULES.exists(),
                    reason="needs Debian chromium and `npm ci` in playground/web")
def test_a_real_call_shows_on_the_calls_page_in_chromium(agent_stack, tmp_path, monkeypatch):
    monkeypatch.setenv("CALL_SUMMARIES", "true")  # the shared stack's agent writes none, for the other tests' sake
    settings = agent_stack.settings  # loaded now: the agent started from them summarizes
    lifecycle.down(settings, ["agent"])
    lifecycle.up(settings, ["agent", "playground"])
    try:
        check_a_call_on_the_page(settings, tmp_path)
    finally:
        monkeypatch.delenv("CALL_SUMMARIES")
        lifecycle.down(agent_stack.settings, ["agent"])
        lifecycle.up(agent_stack.settings, ["agent"])


def check_a_call_on_the_page(settings, tmp_path):
    playground = f"http://127.0.0.1:{settings.playground_port}"
    options = CallOptions(server=f"127.0.0.1:{settings.sip_port}", number="+15550100", caller_id=CALLER,
                          say=["What are your opening hours?"], record=str(tmp_path / "call.wav"), transcribe=False,
                          hangup_after=15, timeout=90)  # on the line long enough for the page to see it live
    placed = {}
    caller = threading.Thread(target=lambda: placed.update(result=place_call_in_subprocess(options, timeout=300)))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "calls-page.png"
    receiver = Receiver(secret=settings.call_webhook_secret)  # it checks the signature with the stack's secret
    with ReceiverThread(receiver, urlparse(SHARED_WEBHOOK_URL).port):
        caller.start()
        try:
            run = subprocess.run(["node", str(REPO_ROOT / "tests" / "browser" / "calls_check.mjs"), playground,
                                  CALLER, str(screenshot)], capture_output=True, text=True, timeout=300)
        finally:
            caller.join(300)
        deadline = time.monotonic() + 60  # the summary is written first (the page saw it), then the webhook sent
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.5)
    result = placed["result"]
    print("\n".join(result.timeline()))
    assert result.ok, result.error
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"\nbrowser saw: {json.dumps(seen, indent=1)}\nscreenshot: {screenshot}")
    assert seen["sawInProgress"] and seen["sawEnded"], seen
    assert seen["rowStatus"] == "caller hung up", seen
    said = " | ".join(seen["transcript"])
    assert any(line.startswith("user") and "hours" in line.lower() for line in seen["transcript"]), said
    assert sum(line.startswith("assistant") for line in seen["transcript"]) >= 2, said  # the greeting, an answer
    assert seen["chartBars"] >= 1, seen  # the answer's latency figures, drawn
    assert seen["summary"].strip(), seen  # written by the LLM after the call, shown without reloading the page
    assert not seen["errors"] and not seen["requests"], seen  # no script errors, nothing fetched from elsewhere

    with CallStore.open(settings) as store:  # what the page showed is what the store holds
        call, = store.list_calls(number=CALLER, limit=1, turns=True)
        assert call.summary and call.summary in seen["summary"]
        assert call.end_reason == "caller_hung_up"
        assert (call.webhook_state, call.webhook_attempts) == ("delivered", 1)

    (headers, body), = [(h, b) for h, b in receiver.received if json.loads(b)["call"]["caller_number"] == CALLER]
    sent = json.loads(body)["call"]  # the receiver answered 200: the signature matched the stack's secret
    assert sent["id"] == call.id and sent["summary"] == call.summary and headers["X-Webhook-Id"] == call.id
    assert any(turn["role"] == "user" and "hours" in turn["text"].lower() for turn in sent["turns"]), sent["turns"]


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM or not NODE_MODULES.exists(),
                    reason="needs Debian chromium and `npm ci` in playground/web")
def test_the_messages_left_on_a_call_show_on_its_page(agent_stack):
    """The page's rendering of messages (taking them on a real call: tests/test_call_keypad.py), from the real store."""
    settings = agent_stack.settings
    lifecycle.up(settings, ["playground"])
    with CallStore.open(settings) as store:
        call_id = store.start_call(room="call-_+15550147_page", kind="phone", caller_number="+15550147",
                                   dialled_number="+15550100")
        store.end_call(call_id, "caller_hung_up")
        store.add_message(call_id, caller_name="John Smith", callback_number="5550199",
                          text="Call me back about <b>the cake</b>.", reason="transfer_failed")
        dealt_with = store.add_message(call_id, caller_name="", callback_number="", text="Never mind.",
                                       reason="asked")
        store.mark_message_handled(dealt_with)
    run = subprocess.run(["node", str(REPO_ROOT / "tests" / "browser" / "messages_check.mjs"),
                          f"http://127.0.0.1:{settings.playground_port}", call_id],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    first, second = sorted(seen["messages"], key=lambda m: not m["open"])
    assert first["open"] and "John Smith" in first["text"] and "call back on 5550199" in first["text"], seen
    assert "<b>the cake</b>" in first["text"] and first["bold"] == 0, seen  # the caller's words as text, not HTML
    assert "the transfer did not go through" in first["text"], seen
    assert not second["open"] and "no number to call back" in second["text"] and "dealt with" in second["text"], seen
    assert not seen["errors"], seen
