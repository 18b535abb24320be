"""Callers' numbers stay out of the agent's log above debug level (agent/redact.py), whoever logs them."""

from __future__ import annotations

import io
import json
import logging

import pytest

from agent import redact

pytestmark = pytest.mark.unit


def record(level: int, message: str, *args, **extra) -> logging.LogRecord:
    made = logging.getLogger("livekit.agents").makeRecord("livekit.agents", level, __file__, 1, message, args, None,
                                                         extra=extra)
    return made


def test_numbers_are_masked_and_pii_fields_dropped_above_debug():
    line = record(logging.INFO, "RoomIO linked to participant %s", "sip_+15550123",
                  **{"lk.pii.participant_identity": "sip_+15550123", "room": "call-_+15550123_xYz", "job_id": "AJ_1"})
    assert redact.RedactCallers().filter(line)
    assert line.getMessage() == "RoomIO linked to participant sip_+••••••23"
    assert line.room == "call-_+••••••23_xYz" and line.job_id == "AJ_1"
    assert not any(key.startswith("lk.pii.") for key in vars(line))


def test_debug_lines_keep_everything():
    line = record(logging.DEBUG, "call from %s", "+15550123", room="call-_+15550123_xYz")
    assert redact.RedactCallers().filter(line)
    assert line.getMessage() == "call from +15550123" and line.room == "call-_+15550123_xYz"


def test_installed_filter_covers_what_livekit_agents_logs(monkeypatch):
    """After livekit-agents' CLI configures logging (as `main.py start` runs it), its JSON lines carry no number."""
    from livekit.agents.cli import _legacy

    root = logging.getLogger()
    before = list(root.handlers)
    levels = {name: logging.getLogger(name).level for name in ["", *logging.root.manager.loggerDict]}
    monkeypatch.setattr(_legacy, "_configure_logger", _legacy._configure_logger)
    redact.install()
    try:
        _legacy._configure_logger(None, logging.INFO)
        added = [h for h in root.handlers if h not in before]
        assert added and all(any(isinstance(f, redact.RedactCallers) for f in h.filters) for h in added)
        out = io.StringIO()
        added[0].setStream(out)
        logging.getLogger("livekit.agents").info("received job request", extra={"room": "call-_+15550123_ab"})
        logged = json.loads(out.getvalue().strip().splitlines()[-1])
        assert logged["room"] == "call-_+••••••23_ab" and "15550123" not in out.getvalue()
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
        for name, level in levels.items():  # _configure_logger sets the root's level and quietens some loggers
            logging.getLogger(name).setLevel(level)
