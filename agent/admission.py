"""Which calls the worker takes, counted so that a burst cannot slip past the limit.

The worker has 2 x AGENT_MAX_CALLS lines: AGENT_MAX_CALLS conversations, and as many again on which a caller hears
"all our lines are busy" (or that they already have calls under way) in words. A caller past those is turned away
at once: the worker deletes their room, and livekit-sip answers the ringing call 486 Busy Here. No caller is left
ringing until SIP_RINGING_TIMEOUT.

A call counts from the moment it is admitted, not only once its job runs: between the two, livekit-agents waits for
the server's assignment and for a warm process (seconds, under load), and every caller of a burst arrives in that
window. (That gap is why 7 callers at once were all greeted with AGENT_MAX_CALLS=4.)
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from playground.tokens import WEB_ROOM_PREFIX

from .call_limits import too_many_from_caller


class Verdict(enum.Enum):
    SERVE = "serve"  # a conversation
    BUSY = "busy"  # told in words that the lines are busy
    REPEAT_CALLER = "repeat caller"  # told in words that they already have AGENT_MAX_CALLS_PER_CALLER calls
    TURN_AWAY = "turn away"  # no line left: the room is deleted and the caller gets 486 Busy Here


@dataclass
class Admission:
    """The lines of one worker. `admit()` decides a call and counts it at once; `settled()` when its job runs (or
    failed to start); `load()` for livekit. livekit-agents calls on_request on its event loop but load_fnc in a
    thread, hence the lock."""

    max_calls: int
    per_caller: int = 0
    room_prefix: str = "call-"
    max_web: int | None = None
    # Admitted calls whose job is not (yet) among the running ones: job id -> room name.
    admitting: dict[str, str] = field(default_factory=dict)
    # The verdict of every admitted call still admitting or running: job id -> verdict.
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def lines(self) -> int:
        return 2 * self.max_calls

    def admit(self, job_id: str, room: str, running: Mapping[str, str]) -> Verdict:
        """The verdict for a new call in `room`, given the running jobs (job id -> room name); a call that gets a
        line counts against the limits until `settled()` and then as long as its job runs."""
        with self._lock:
            return self._admit(job_id, room, running)

    def _admit(self, job_id: str, room: str, running: Mapping[str, str]) -> Verdict:
        calls = self._calls(running)
        for job in [job for job in self.verdicts if job not in calls]:  # calls that ended
            del self.verdicts[job]
        conversations = [name for job, name in calls.items() if self.verdicts.get(job, Verdict.SERVE) is Verdict.SERVE]
        if len(calls) >= self.lines:
            return Verdict.TURN_AWAY
        if too_many_from_caller(room, calls.values(), self.room_prefix, self.per_caller):
            verdict = Verdict.REPEAT_CALLER
        elif len(conversations) >= self.max_calls:
            verdict = Verdict.BUSY
        elif room.startswith(WEB_ROOM_PREFIX) and self.max_web is not None and \
                sum(name.startswith(WEB_ROOM_PREFIX) for name in conversations) >= self.max_web:
            verdict = Verdict.BUSY  # web users never take every line
        else:
            verdict = Verdict.SERVE
        self.admitting[job_id] = room
        self.verdicts[job_id] = verdict
        return verdict

    def settled(self, job_id: str) -> None:
        """The call's job runs now (it is among the running jobs from here on), or it never will."""
        with self._lock:
            self.admitting.pop(job_id, None)

    def load(self, running: Mapping[str, str]) -> float:
        """Lines in use / (lines + 1): below 1 even when every line is taken, so livekit-server (agents.target_load
        1.0) still offers this worker the next call, and the worker turns it away at once rather than leaving it
        ringing. With several workers, livekit favours the one with the most lines free."""
        with self._lock:
            return len(self._calls(running)) / (self.lines + 1)

    def free_lines(self, running: Mapping[str, str]) -> int:
        with self._lock:
            return max(self.lines - len(self._calls(running)), 0)

    def _calls(self, running: Mapping[str, str]) -> dict[str, str]:
        """Every call on a line, running or admitting: job id -> room name."""
        return {**self.admitting, **running}
