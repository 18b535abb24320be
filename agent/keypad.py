"""The phone keypad (DTMF, RFC 4733 through livekit-sip): the business's shortcuts, and digits keyed in where the
assistant asked for a number.

KEYPAD in the settings or the business file maps a key to an action, like "0=person, 9=hours":
- person: put the caller through to a colleague (TRANSFER_NUMBER); without one, take a message;
- message: take a message;
- hours: the opening hours, read out;
- repeat: what the assistant last said, again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from livekit import rtc
from livekit.agents import AgentSession

from stack.settings import Settings

log = logging.getLogger("agent.keypad")

ACTIONS = ("person", "message", "hours", "repeat")
KEYS = "0123456789*#"
DEFAULT_KEYPAD = Settings.default("keypad")


def parse_keypad(text: str) -> dict[str, str]:
    """{"0": "person", ...} from "0=person, 9=hours"; ValueError, in one line, naming what is wrong."""
    shortcuts: dict[str, str] = {}
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        key, sep, action = (piece.strip().lower() for piece in part.partition("="))
        if not sep or len(key) != 1 or key not in KEYS:
            raise ValueError(f"KEYPAD={text!r}: {part.strip()!r} is not key=action with one key of {KEYS}; "
                             f"write it like {DEFAULT_KEYPAD!r}")
        if action not in ACTIONS:
            raise ValueError(f"KEYPAD={text!r}: {action!r} is no keypad action; use one of {', '.join(ACTIONS)}")
        if key in shortcuts:
            raise ValueError(f"KEYPAD={text!r}: key {key} is given twice")
        shortcuts[key] = action
    return shortcuts


def describe(shortcuts: dict[str, str]) -> str:
    """"Press 0 to speak to a person, or 9 for our opening hours." (for a key that does nothing)."""
    words = {"person": "to speak to a person", "message": "to leave a message", "hours": "for our opening hours",
             "repeat": "to hear that again"}
    said = [f"{key if key not in '*#' else {'*': 'star', '#': 'pound'}[key]} {words[action]}"
            for key, action in shortcuts.items()]
    if not said:
        return ""
    return "Press " + (", ".join(said[:-1]) + ", or " + said[-1] if len(said) > 1 else said[0]) + "."


class Keypad:
    """Routes each key the phone caller presses: to the running task that asked for digits (one with
    `key_pressed`, like agent/take_message.py's), else to the shortcut's action (`act(action)`)."""

    def __init__(self, session: AgentSession, shortcuts: dict[str, str], act: Callable[[str], None]) -> None:
        self.session = session
        self.shortcuts = shortcuts
        self.act = act

    def listen(self, room: rtc.Room) -> None:
        room.on("sip_dtmf_received", self._pressed)

    def _pressed(self, event: rtc.SipDTMF) -> None:
        linked = self.session.room_io.linked_participant if self.session.input.audio_enabled else None
        if linked is None or (event.participant is not None and event.participant.identity != linked.identity):
            return  # on hold or handed over, or another party's keys (a colleague answering a warm transfer)
        log.info("keypad: %s", "a digit" if event.digit.isdigit() else event.digit)
        self.press(event.digit)

    def press(self, key: str) -> None:
        agent = self.session.current_agent
        if callable(key_pressed := getattr(agent, "key_pressed", None)):
            key_pressed(key)
            return
        self.act(self.shortcuts.get(key, ""))
