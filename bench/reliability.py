"""The reliability suite: faults, hostile input and long runs against the running stack, each scenario one function
that does something to the stack, checks what a caller (or a client) gets, and returns a row for docs/reliability.md.

    python cli.py up
    python -m bench.reliability [--calls 100] [--bursts 5] [--only burst,endpoint-killed] [--write docs/reliability.md]

`make reliability` runs it on a stack of its own in a network namespace of its own; tests/test_reliability.py runs
the same functions with small counts in `make test`. Every loop is bounded in count and in time, and every call and
packet goes to the stack's own addresses (127.0.0.1 in its namespace).

To add a scenario, write one function `def name(suite: Suite) -> Outcome` and decorate it with `@scenario(...)`;
the registry's order is the report's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from bench.report import replace_section
from bench.stack_metrics import LogTail, total_rss
from stack import lifecycle
from stack.settings import LOOPBACK, Settings
from stack.supervision import running_programs
from tools.softphone import (
    CallOptions,
    CallResult,
    place_call_in_subprocess,
    result_from_process,
    run_call_process,
    synthesize,
    write_wav,
)

CALL_TIMEOUT_S = 45  # each wait within one call: for the answer, the greeting
RECOVERY_BOUND_S = 180  # the longest a scenario waits for the stack to answer calls again
WARM_UP_BOUND_S = 300  # the first call of a fresh stack also waits for the agent's models to load
RSS_GOAL_PERCENT = 5.0
MAX_FAILURES_IN_A_ROW = 5
# How long a caller past capacity may wait to hear that the lines are busy (or get 486 Busy Here): well under
# SIP_RINGING_TIMEOUT (60 s), after which a caller nobody answered would be let go anyway. A spoken "busy" needs a
# worker process, which a machine shared with other work can take this long to give.
BUSY_BOUND_S = 30
LINES_FREE_BOUND_S = 90  # the longest a scenario waits for earlier calls' rooms to go (each takes a line)
VOICE_TO_VOICE_GOAL_S = 3.0  # issue 11's latency goal, reported; docs/deploy.md: not met on 2 cores, even at 1 call
QUESTION = "What are your opening hours?"


@dataclass
class Outcome:
    done: str  # what the scenario did
    expected: str
    happened: str
    figures: dict[str, str] = field(default_factory=dict)
    ok: bool = False
    details: list[str] = field(default_factory=list)  # Markdown lines under the table (a per-message list)


@dataclass
class Suite:
    """What a scenario gets: the stack's settings, where to dial, and how many of each thing to do."""
    settings: Settings
    sequential_calls: int = 100
    sequential_minutes: float = 30.0  # the sequential calls stop here, whatever the count
    burst_rounds: int = 5
    progress: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True)
    caller_serial: int = 0
    _question: Path | None = None

    @property
    def server(self) -> str:
        return f"{LOOPBACK}:{self.settings.sip_port}"

    @property
    def number(self) -> str:
        return self.settings.sip_numbers[0]

    def caller_id(self) -> str:
        """A fresh caller number for each call: AGENT_MAX_CALLS_PER_CALLER must not count one call against the
        next."""
        self.caller_serial += 1
        return f"+1555030{self.caller_serial % 10000:04d}"

    def warm_up(self) -> str:
        """Calls until one is greeted (a fresh stack's first call waits for the agent's models): the scenarios then
        start from a stack that answers, and their figures do not include its start-up."""
        self.progress("warm-up: calling until the agent answers ...")
        greeted_after, attempts = first_answered_call(self, time.monotonic(), WARM_UP_BOUND_S)
        if greeted_after is None:
            raise RuntimeError(f"the stack never answered a call within {WARM_UP_BOUND_S} s: {'; '.join(attempts)}")
        return f"first call greeted {greeted_after:.1f} s after the suite began ({len(attempts)} call(s))"

    def question(self) -> Path:
        """A WAV of the caller asking QUESTION in the local voice, made once: synthesized before dialling, so that a
        burst's callers dial at once (a softphone's own `say` would load the voice in each)."""
        if self._question is None:
            path = self.settings.run_dir / "reliability" / "question.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_wav(path, synthesize(QUESTION))
            self._question = path
        return self._question

    def options(self, **overrides) -> CallOptions:
        return CallOptions(**{"server": self.server, "number": self.number, "caller_id": self.caller_id(),
                              "transcribe": False, "timeout": CALL_TIMEOUT_S, "codecs": ["pcmu"], **overrides})


@dataclass
class Scenario:
    name: str
    title: str
    run: Callable[[Suite], Outcome]


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, title: str):
    def register(function: Callable[[Suite], Outcome]) -> Callable[[Suite], Outcome]:
        SCENARIOS[name] = Scenario(name, title, function)
        return function
    return register


# --- calls ---------------------------------------------------------------------------------------------------------
# What the agent logs when it turns a call away with a message (agent/worker.py): audio, but no service.
TURNED_AWAY = ("lines busy: telling the caller", "turning this one away", "AI provider unavailable")


def greeted(result: CallResult) -> bool:
    return result.ok and result.greeting_ms is not None and not result.reason


def short_call(suite: Suite, **overrides) -> CallResult:
    """A call that hears the greeting and hangs up at its end. One turned away with a message (all lines busy)
    is not greeted: its `reason` says why."""
    agent_log = LogWatch(suite.settings.log_dir / "agent.log")
    result = place_call_in_subprocess(suite.options(**overrides), timeout=CALL_TIMEOUT_S * 3 + 60)
    time.sleep(0.5)  # the agent's log line about it is written
    if result.ok and (away := next((text for text in TURNED_AWAY if agent_log.seen(text)), None)):
        result.reason = f"turned away by the agent ({away})"
    return result


def describe(result: CallResult) -> str:
    if greeted(result):
        return f"greeted at {result.greeting_ms / 1000:.1f} s"
    return result.reason if result.ok and result.reason else result.error or "no greeting"


def first_answered_call(suite: Suite, since: float,
                        bound_s: float = RECOVERY_BOUND_S) -> tuple[float | None, list[str]]:
    """Calls, one after another, until one is greeted or `bound_s` passed since `since` (monotonic); (seconds from
    `since` to that greeting, or None; what each call got)."""
    attempts: list[str] = []
    while time.monotonic() - since < bound_s:
        result = short_call(suite)
        attempts.append(describe(result))
        suite.progress(f"  call {len(attempts)}: {attempts[-1]}")
        if greeted(result) and result.started_at is not None:
            return result.started_at + result.greeting_ms / 1000 - since, attempts
        time.sleep(1)
    return None, attempts


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


# --- the agent's processes -----------------------------------------------------------------------------------------
def agent_processes(settings: Settings) -> tuple[psutil.Process | None, list[psutil.Process]]:
    """(the agent worker, every process of the agent component): the worker is the first process of the component
    that runs main.py (under a supervisor, or the component itself)."""
    root = running_programs(settings.run_dir).get("agent")
    if root is None:
        return None, []
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None, []
    for process in tree:
        try:
            if (argv := process.cmdline())[1:2] and argv[1].endswith("main.py"):  # python main.py start
                return process, tree
        except psutil.Error:
            continue
    return None, tree


def rss_mb(processes: list[psutil.Process]) -> float:
    return total_rss(processes) / 2**20


class LogWatch(LogTail):
    """A component's log from now on: whether a text has been written since."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.written = b""

    def seen(self, text: str) -> bool:
        self.written += self.read_new()
        return text.encode() in self.written


def wait_until(condition: Callable[[], bool], bound_s: float, step: float = 0.25) -> float | None:
    """Seconds until `condition()` held, or None after `bound_s`."""
    started = time.monotonic()
    while time.monotonic() - started < bound_s:
        if condition():
            return time.monotonic() - started
        time.sleep(step)
    return None


async def _sip_state(settings: Settings) -> tuple[list[str], list[str]]:
    from sip import provisioning

    async with provisioning.livekit_api_of(settings) as lk:
        trunks, rules = await provisioning.list_all(lk)
    return sorted(t.sip_trunk_id for t in trunks), sorted(r.sip_dispatch_rule_id for r in rules)


def sip_state(settings: Settings) -> tuple[list[str], list[str]]:
    """The trunk and dispatch rule IDs, as livekit-api lists them."""
    return asyncio.run(_sip_state(settings))


async def _agents_with_caller(settings: Settings, caller: str) -> list:
    from livekit import api

    from sip import provisioning

    async with provisioning.livekit_api_of(settings) as lk:
        rooms = (await lk.room.list_rooms(api.ListRoomsRequest())).rooms
        for people in await provisioning.participants_of(lk, rooms):
            if any(p.attributes.get("sip.phoneNumber") == caller for p in people):
                return [p for p in people if p.kind == api.ParticipantInfo.Kind.AGENT]
    return []


async def _rooms(settings: Settings) -> list[str]:
    from livekit import api

    from sip import provisioning

    async with provisioning.livekit_api_of(settings) as lk:
        return [room.name for room in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms]


def wait_until_no_calls(settings: Settings, bound_s: float = LINES_FREE_BOUND_S) -> float | None:
    """Seconds until every earlier call's room (phone or web) is gone, or None after `bound_s`. The agent deletes a
    room as its call ends, a second or two after the caller hangs up on a busy machine; until then the call holds a
    line, and with one line the next caller would hear "busy"."""
    return wait_until(lambda: not asyncio.run(_rooms(settings)), bound_s, step=0.5)


def agent_with_caller(settings: Settings, caller: str) -> bool:
    """Whether the agent has joined the room of the SIP caller calling from `caller`."""
    return bool(asyncio.run(_agents_with_caller(settings, caller)))


def agent_publishes_audio(settings: Settings, caller: str) -> bool:
    """Whether the agent in the room of the caller calling from `caller` publishes a track: its session runs (past
    the provider check at the call's start)."""
    return any(agent.tracks for agent in asyncio.run(_agents_with_caller(settings, caller)))


def kill_endpoint(settings: Settings) -> int:
    """Kills the local AI endpoint (SIGKILL: a crash) and keeps it down: supervisord would start it again at once,
    before a call's failure shows. `lifecycle.up(settings, ["local-openai"])` brings it back. Its pid."""
    process = running_programs(settings.run_dir).get("local-openai")
    if process is None:
        raise RuntimeError("local-openai is not running under the stack's supervisor")
    process.kill()
    lifecycle.down(settings, ["local-openai"])
    return process.pid


def call_on_record(settings: Settings, caller: str, since: datetime | None, bound_s: float = 30,
                   complete: Callable[[dict], bool] = lambda record: True) -> dict | None:
    """The latest call from `caller` (started after `since`, if given) as the call store keeps it (`cli.py calls
    list --json`'s shape, with its turns), once its end is written (the agent writes it as the call closes) and
    `complete(record)` holds; after `bound_s`, what there is (None: no ended call)."""
    from calls.store import CallStore

    found: dict = {}
    with CallStore.open(settings) as store:
        def ended() -> bool:
            calls = store.list_calls(since=since, number=caller, turns=True)
            if calls and calls[0].ended_at is not None:
                found.clear()
                found.update(store.to_dict(calls[0]))
            return bool(found) and complete(found)

        wait_until(ended, bound_s, step=0.5)
    return found or None


def restart(settings: Settings, name: str) -> float:
    """Stops one component and starts it again (healthy); the seconds it took."""
    started = time.monotonic()
    lifecycle.down(settings, [name])
    lifecycle.up(settings, [name])
    return time.monotonic() - started


# --- the scenarios ---------------------------------------------------------------------------------------------------
@scenario("sequential-calls", "Sequential calls")
def sequential_calls(suite: Suite) -> Outcome:
    count = suite.sequential_calls
    bound_s = min(count * 60.0, suite.sequential_minutes * 60)
    in_a_row = 0  # failures since the last greeted call: a stack that stopped answering ends the run early
    failures: list[str] = []
    greetings: list[float] = []
    samples: list[tuple[float, float]] = []  # (worker RSS, whole agent RSS) in MB after each call
    started = time.monotonic()
    for index in range(count):
        if time.monotonic() - started > bound_s:
            failures.append(f"stopped after {index} calls: the run's bound of {bound_s:.0f} s passed")
            break
        result = short_call(suite)
        if greeted(result):
            greetings.append(result.greeting_ms)
            in_a_row = 0
        else:
            failures.append(f"call {index + 1}: {describe(result)}")
            in_a_row += 1
        worker, tree = agent_processes(suite.settings)
        samples.append((rss_mb([worker] if worker else []), rss_mb(tree)))
        if (index + 1) % 10 == 0 or not greeted(result) or index + 1 == count:
            suite.progress(f"  {index + 1}/{count} calls, {len(failures)} failed, agent worker "
                           f"{samples[-1][0]:.0f} MB")
        if in_a_row == MAX_FAILURES_IN_A_ROW:
            failures.append(f"stopped after {index + 1} calls: {in_a_row} failed in a row")
            break
    elapsed = time.monotonic() - started
    # Growth from the first call's end (models and caches warm) to the last call's.
    worker_growth = (samples[-1][0] / samples[0][0] - 1) * 100 if len(samples) > 1 and samples[0][0] else None
    tree_growth = (samples[-1][1] / samples[0][1] - 1) * 100 if len(samples) > 1 and samples[0][1] else None
    greetings.sort()
    p50 = greetings[len(greetings) // 2] if greetings else None
    p95 = greetings[min(len(greetings) - 1, int(len(greetings) * 0.95))] if greetings else None
    within_goal = worker_growth is not None and worker_growth < RSS_GOAL_PERCENT
    return Outcome(
        done=f"{count} calls in a row, each greeted and hung up by the caller at the greeting's end",
        expected=f"0 failed; the agent worker's RSS grows < {RSS_GOAL_PERCENT:.0f} % from the first call's end to "
                 "the last's",
        happened=(f"{len(greetings)}/{count} greeted, {len([f for f in failures if f.startswith('call ')])} failed"
                  + (f" ({'; '.join(failures[:3])})" if failures else "")
                  + (f"; worker RSS {'within' if within_goal else 'OVER'} the goal" if worker_growth is not None
                     else "")),
        figures={"calls": str(count), "failed": str(count - len(greetings)), "wall": f"{elapsed:.0f} s",
                 "greeting p50 / p95": f"{(p50 or 0) / 1000:.2f} / {(p95 or 0) / 1000:.2f} s",
                 "worker RSS first → last": f"{samples[0][0]:.0f} → {samples[-1][0]:.0f} MB" if samples else "-",
                 "worker RSS growth": f"{worker_growth:+.1f} %" if worker_growth is not None else "-",
                 "agent processes RSS first → last": (f"{samples[0][1]:.0f} → {samples[-1][1]:.0f} MB "
                                                      f"({tree_growth:+.1f} %)") if tree_growth is not None else "-"},
        ok=not failures and within_goal,
    )


@dataclass
class BurstCaller:
    """One caller of a burst: what the softphone got and what the call store says, sorted into served (a
    conversation: the question answered), busy (told so in words and let go), 486 (turned away while ringing), rang
    (nobody answered) or failed (anything else)."""
    round: int
    result: CallResult
    end_reason: str | None  # the call store's, for an answered call
    kind: str = ""
    problem: str | None = None  # what broke the promise, for this caller

    def __post_init__(self) -> None:
        self.kind, self.problem = burst_verdict(self.result, self.end_reason)

    @property
    def at_s(self) -> float | None:
        """When the caller knew: the 486, the busy message's first word, or the answer (served), from the INVITE."""
        moment = {"486": self.result.rejected_ms, "busy": self.result.greeting_ms,
                  "served": self.result.answered_ms}.get(self.kind)
        return None if moment is None else moment / 1000

    @property
    def reply_s(self) -> float | None:
        turns = self.result.turns
        return turns[0].voice_to_voice_ms / 1000 if self.kind == "served" and turns and \
            turns[0].voice_to_voice_ms is not None else None


def burst_verdict(result: CallResult, end_reason: str | None) -> tuple[str, str | None]:
    """(served / busy / 486 / rang / failed, what is wrong or None) for one caller of a burst: each must be served,
    told busy within BUSY_BOUND_S, or given 486 within it; none may ring on, or be greeted and then left in silence."""
    bound_ms = BUSY_BOUND_S * 1000
    if result.answered_ms is None:
        if result.status_code == 486:
            late = result.rejected_ms is None or result.rejected_ms >= bound_ms
            return "486", f"the 486 came after {seconds((result.rejected_ms or 0) / 1000)}" if late else None
        if result.status_code is None and result.ringing_ms is not None:  # the softphone gave up (CANCEL)
            return "rang", result.error or "never answered"
        return "failed", result.error or f"{result.status_code} {result.reason or ''}".strip()
    kind = "busy" if end_reason == "busy" else "served"
    if end_reason == "error":
        return kind, "the AI failed: the caller got the apology, not service"
    if result.ringing_ms is not None and result.answered_ms - result.ringing_ms >= bound_ms:
        return kind, f"rang {seconds((result.answered_ms - result.ringing_ms) / 1000)} before the answer"
    if result.greeting_ms is None:
        return kind, f"answered, then silence ({result.error or 'no audio'})"
    if kind == "busy":
        if result.greeting_ms >= bound_ms:
            return kind, f"the busy message began only {seconds(result.greeting_ms / 1000)} after the INVITE"
        if result.hangup_by != "agent":
            return kind, "told busy, but not let go (no BYE)"
        return kind, None
    if end_reason is None:
        return kind, "answered, but no ended call on record"
    if not result.turns or result.turns[0].voice_to_voice_ms is None:
        return kind, "greeted, then silence: the question got no answer"
    return kind, None


def _spread(values: list[float]) -> str:
    values = sorted(values)
    return f"{values[len(values) // 2]:.1f} / {values[-1]:.1f} s" if values else "-"


def _at(callers: list[BurstCaller], kind: str) -> list[float]:
    return [c.at_s for c in callers if c.kind == kind and c.at_s is not None]


@scenario("burst", "Burst of 2x capacity + 1 callers at once")
def burst(suite: Suite) -> Outcome:
    settings = suite.settings
    capacity = settings.agent_max_calls
    size = 2 * capacity + 1
    question = str(suite.question())
    callers: list[BurstCaller] = []
    round_problems: list[str] = []
    for number in range(1, suite.burst_rounds + 1):
        if wait_until_no_calls(settings) is None:  # an earlier call still closing would take a line
            round_problems.append(f"round {number}: earlier calls' rooms still there after {LINES_FREE_BOUND_S} s")
        since = datetime.now(UTC) - timedelta(seconds=1)
        options = [suite.options(play=[question], hangup_after=5) for _ in range(size)]
        with ThreadPoolExecutor(size) as pool:
            results = list(pool.map(lambda o: place_call_in_subprocess(o, timeout=CALL_TIMEOUT_S * 3 + 60), options))
        this_round = [BurstCaller(number, result, (call_on_record(settings, o.caller_id, since) or {}).get(
            "end_reason") if result.answered_ms is not None else None) for o, result in zip(options, results)]
        callers += this_round
        served = sum(c.kind == "served" for c in this_round)
        if served != capacity:
            round_problems.append(f"round {number}: {served} served, not {capacity}")
        suite.progress(f"  round {number}/{suite.burst_rounds}: " + ", ".join(
            f"{c.kind} {seconds(c.at_s)}{' (' + c.problem + ')' if c.problem else ''}" for c in this_round))
    kinds = {kind: sum(c.kind == kind for c in callers) for kind in ("served", "busy", "486", "rang", "failed")}
    problems = [f"round {c.round}: {c.kind}: {c.problem}" for c in callers if c.problem] + round_problems
    replies = [c.reply_s for c in callers if c.reply_s is not None]
    details = ["| round | caller | outcome | answered / told busy / 486 at | question answered after | hung up by "
               "| problem |", "|---|---|---|---|---|---|---|"]
    for index, caller in enumerate(callers):
        details.append(f"| {caller.round} | {index % size + 1} | {caller.kind} | {seconds(caller.at_s)} "
                       f"| {seconds(caller.reply_s)} | {caller.result.hangup_by or '-'} | {caller.problem or '-'} |")
    return Outcome(
        done=f"{size} callers (2 x AGENT_MAX_CALLS={capacity} + 1) dial at once, each asking \"{QUESTION}\" after "
             f"the greeting; {suite.burst_rounds} round(s), each once the last round's rooms are gone; the call "
             "store says which were told busy",
        expected=f"per round, {capacity} served (the question answered: never a greeting followed by silence); the "
                 f"others told \"all our lines are busy\" and let go, or given 486, within {BUSY_BOUND_S} s of the "
                 f"INVITE; none left ringing. Voice-to-voice is reported against the {VOICE_TO_VOICE_GOAL_S:.0f} s "
                 "goal, which 2 cores do not meet even at 1 call (docs/deploy.md), so it does not fail the row",
        happened=(", ".join(f"{n} {kind}" for kind, n in kinds.items() if n) + f" of {len(callers)} callers"
                  + (f"; {'; '.join(problems[:4])}" if problems else "; every caller served or told busy in time")),
        figures={"rounds x callers": f"{suite.burst_rounds} x {size}", **{k: str(n) for k, n in kinds.items()},
                 "served: answered p50 / max": _spread(_at(callers, "served")),
                 "served: question answered after p50 / max": _spread(replies),
                 f"within the {VOICE_TO_VOICE_GOAL_S:.0f} s goal": f"{sum(r <= VOICE_TO_VOICE_GOAL_S for r in replies)}"
                                                                  f"/{len(replies)}",
                 "busy: message began p50 / max": _spread(_at(callers, "busy")),
                 "486: after p50 / max": _spread(_at(callers, "486")),
                 "problems": str(len(problems))},
        ok=not problems and not kinds["rang"] and not kinds["failed"],
        details=details,
    )


@scenario("agent-killed", "Agent killed mid-call")
def agent_killed(suite: Suite) -> Outcome:
    settings = suite.settings
    stay_s = 60.0  # the caller waits this long for a BYE before giving up
    options = suite.options(hangup_after=stay_s)
    call = run_call_process(options)
    try:
        # Kill once the agent is in the caller's room (and, 3 s later, greeting them).
        worker, _ = agent_processes(settings)
        if worker is None:
            raise RuntimeError("the agent component is not running")
        joined = wait_until(lambda: agent_with_caller(settings, options.caller_id), CALL_TIMEOUT_S * 2, step=0.5)
        if joined is None:
            raise RuntimeError(f"the agent never joined the call within {CALL_TIMEOUT_S * 2} s")
        time.sleep(3)  # the greeting is playing
        killed_at = time.monotonic()
        suite.progress(f"  kill -9 the agent worker (pid {worker.pid}) {joined or 0:.1f} s into the call")
        os.kill(worker.pid, signal.SIGKILL)
        # A second caller dials at once, while the first one waits for its BYE.
        answered_s, attempts = first_answered_call(suite, killed_at)
        out, err = call.communicate(timeout=stay_s + CALL_TIMEOUT_S * 3 + 60)
    finally:
        if call.poll() is None:
            call.kill()
            call.communicate()
    result = result_from_process(out, err, call.returncode)
    released_s = None
    if result.hangup_by == "agent" and result.started_at is not None and result.hangup_ms is not None:
        released_s = result.started_at + result.hangup_ms / 1000 - killed_at
    if released_s is not None:
        happened = [f"the caller got a BYE {seconds(released_s)} after the kill"]
    else:
        happened = [f"the caller got no BYE: dead air until it hung up itself {stay_s:.0f} s later ("
                    f"{result.error or 'hung up by ' + str(result.hangup_by)})"]
    restarted, _ = agent_processes(settings)
    happened.append(f"next call greeted {seconds(answered_s)} after the kill ({len(attempts)} call(s): "
                    f"{'; '.join(attempts[-3:])})")
    return Outcome(
        done="a call is up and greeted; kill -9 of the agent worker process (its supervisor stays)",
        expected="the caller is released (BYE) within seconds, not left in dead air; the worker is restarted, and "
                 "the call placed right after the kill is answered once it is back (not left ringing)",
        happened="; ".join(happened),
        figures={"BYE after kill": seconds(released_s), "next call greeted after kill": seconds(answered_s),
                 "calls until greeted": str(len(attempts)),
                 "worker pid": f"{worker.pid} → {restarted.pid if restarted else '-'}"},
        ok=released_s is not None and released_s < stay_s and answered_s is not None and len(attempts) == 1,
    )


@scenario("endpoint-killed", "AI endpoint killed mid-call")
def endpoint_killed(suite: Suite) -> Outcome:
    from agent.failures import APOLOGY, APOLOGY_THEN_TRANSFER

    settings = suite.settings
    question = str(suite.question())
    options = suite.options(play=[question], hangup_after=30)
    since = datetime.now(UTC) - timedelta(seconds=1)
    call = run_call_process(options)
    killed_at = back_s = None
    try:
        session = wait_until(lambda: call.poll() is not None or agent_publishes_audio(settings, options.caller_id),
                             CALL_TIMEOUT_S * 2)
        if session is None or call.poll() is not None:
            raise RuntimeError(f"the agent's session never started on the call within {CALL_TIMEOUT_S * 2} s")
        killed_at = time.monotonic()
        pid = kill_endpoint(settings)
        suite.progress(f"  kill -9 the AI endpoint (pid {pid}) as the agent starts speaking; held down until the "
                       "call ends")
        out, err = call.communicate(timeout=CALL_TIMEOUT_S * 3 + 90)
    finally:
        if call.poll() is None:
            call.kill()
            call.communicate()
        lifecycle.up(settings, ["local-openai"])
        if killed_at is not None:
            back_s = time.monotonic() - killed_at
    result = result_from_process(out, err, call.returncode)

    def apology_in(record: dict) -> str | None:  # the record's end is written just before the apology's turn
        return next((turn["text"] for turn in record.get("turns", []) if turn["role"] == "assistant"
                     and turn["text"] in (APOLOGY, APOLOGY_THEN_TRANSFER)), None)

    record = call_on_record(settings, options.caller_id, since, bound_s=20, complete=apology_in) or {}
    apology = apology_in(record)
    turn = result.turns[0] if result.turns else None
    heard_s = None  # from the kill to the first sound after the caller's question: the apology
    if turn and turn.reply_start_ms is not None and result.started_at is not None:
        heard_s = result.started_at + turn.reply_start_ms / 1000 - killed_at
    if result.refer_to:
        released = f"REFER to {result.refer_to.split('@')[0].removeprefix('<').removeprefix('sip:')}"
        released_ms = result.refer_ms
    elif result.hangup_by == "agent":
        released, released_ms = "BYE", result.hangup_ms
    else:
        released, released_ms = f"neither: {result.error or 'the caller hung up itself'}", None
    after_apology_s = (released_ms - turn.reply_start_ms) / 1000 if released_ms is not None and turn and \
        turn.reply_start_ms is not None else None
    # The endpoint is back (lifecycle.up waited for its health check): the next call must get a conversation.
    next_call = short_call(suite, play=[question], hangup_after=1)
    next_reply = next_call.turns[0].voice_to_voice_ms if greeted(next_call) and next_call.turns else None
    heard = heard_s is not None and apology is not None
    return Outcome(
        done="a call is up (the agent's session runs, its greeting starting); kill -9 of the local AI endpoint, held "
             "down (supervisord would restart it) until the call ends; the caller asks a question after the "
             "greeting; then the endpoint is started again and the next call asks it too",
        expected="the caller hears the apology in the offline voice, then is transferred (REFER, where "
                 "TRANSFER_NUMBER is set) or hung up on (BYE), not left in silence; the next call is greeted and "
                 "its question answered, without restarting the agent",
        happened=(f"{'apology heard' if heard else 'NO apology heard'} {seconds(heard_s)} after the kill"
                  f"{' (' + repr(apology) + ' on record)' if apology else ' (the record has none)'}; then {released}"
                  f" {seconds(after_apology_s)} after it began; the call's record ends "
                  f"{record.get('end_reason') or '-'}; endpoint back {seconds(back_s)} after the kill; next call: "
                  f"{describe(next_call)}, its question "
                  + (f"answered after {next_reply / 1000:.1f} s" if next_reply is not None else "NOT answered")),
        figures={"apology heard after kill": seconds(heard_s),
                 "apology after the caller's words": seconds(turn.voice_to_voice_ms / 1000 if turn and
                                                             turn.voice_to_voice_ms is not None else None),
                 "released by": released.split(":")[0], "REFER / BYE after the apology began": seconds(after_apology_s),
                 "record's end": record.get("end_reason") or "-", "endpoint back after kill": seconds(back_s),
                 "next call greeted at": seconds(next_call.greeting_ms / 1000 if greeted(next_call) else None),
                 "next call's question answered after": seconds(next_reply / 1000 if next_reply else None)},
        ok=heard and after_apology_s is not None and next_reply is not None,
    )


@scenario("livekit-server-restart", "livekit-server restart")
def livekit_server_restart(suite: Suite) -> Outcome:
    settings = suite.settings
    agent_log = LogWatch(settings.log_dir / "agent.log")
    running = {s.name for s in lifecycle.status(settings) if s.up}
    restart_at = time.monotonic()
    took = restart(settings, "livekit-server")
    suite.progress(f"  livekit-server restarted in {took:.1f} s")
    registered = wait_until(lambda: agent_log.seen("registered worker"), RECOVERY_BOUND_S)
    registered_s = None if registered is None else time.monotonic() - restart_at
    answered_s, attempts = first_answered_call(suite, restart_at)
    down = [s.name for s in lifecycle.status(settings) if s.name in running and not s.up]
    return Outcome(
        done="livekit-server stopped and started again (cli.py's lifecycle), the rest of the stack left running",
        expected="the agent registers again by itself; the next call is answered",
        happened=(f"agent registered again {seconds(registered_s)} after the restart began; "
                  f"first call greeted {seconds(answered_s)} after ({len(attempts)} call(s): "
                  f"{'; '.join(attempts[-3:])}); components down after: {', '.join(down) or 'none'}"),
        figures={"restart": f"{took:.1f} s", "agent registered after": seconds(registered_s),
                 "next call greeted after": seconds(answered_s), "calls until greeted": str(len(attempts))},
        ok=registered_s is not None and answered_s is not None and len(attempts) == 1 and not down,
    )


@scenario("redis-restart", "Redis restart")
def redis_restart(suite: Suite) -> Outcome:
    settings = suite.settings
    before = sip_state(settings)
    restart_at = time.monotonic()
    took = restart(settings, "redis")
    suite.progress(f"  redis restarted in {took:.1f} s")
    answered_s, attempts = first_answered_call(suite, restart_at)
    after = sip_state(settings)
    kept = before == after and bool(before[0]) and bool(before[1])
    return Outcome(
        done="redis stopped and started again (its append-only file kept), the rest of the stack left running",
        expected="the next call is answered; the trunks and dispatch rules are still there (listed via livekit-api)",
        happened=(f"first call {'answered' if len(attempts) == 1 and answered_s else 'not answered'}: "
                  f"{'; '.join(attempts[:3])}; greeted {seconds(answered_s)} after the restart began; trunks "
                  f"{len(before[0])} → {len(after[0])}, rules {len(before[1])} → {len(after[1])}"
                  f"{' (same IDs)' if kept else ' (CHANGED)'}"),
        figures={"restart": f"{took:.1f} s", "next call greeted after": seconds(answered_s),
                 "calls until greeted": str(len(attempts)), "trunks / rules kept": "yes" if kept else "NO"},
        ok=kept and answered_s is not None and len(attempts) == 1,
    )


@scenario("malformed-sip", "Malformed and hostile SIP")
def malformed_sip(suite: Suite) -> Outcome:
    from bench.sip_probe import VERDICTS, load_corpus, run_corpus

    settings = suite.settings
    before = lifecycle.status(settings, ["livekit-sip"])[0]
    corpus = load_corpus()
    results = run_corpus(suite.server, suite.number, source=LOOPBACK, entries=corpus, progress=suite.progress)
    after = lifecycle.status(settings, ["livekit-sip"])[0]
    survived = after.up and after.pid == before.pid
    # The corpus's own calls (a dozen that rang or were answered) hold agent lines until they end: that is a burst,
    # not what this scenario tests, so the normal call waits for them to be gone (bounded) and says how long.
    cleared_s = wait_until_no_calls(settings)
    normal_s, attempts = first_answered_call(suite, time.monotonic(), bound_s=120)
    counts = {verdict: sum(1 for r in results if r.verdict == verdict) for verdict in VERDICTS}
    details = ["| # | message | RFC 3261 expects | what happened | verdict |", "|---|---|---|---|---|"]
    for result in results:
        entry = result.entry
        details.append(f"| {entry.name} | {entry.what} | {entry.rfc} | {_cell(result.happened)}"
                       f"{' (cleanup: ' + ', '.join(result.cleanup) + ')' if result.cleanup else ''} "
                       f"| {result.verdict} |")
    return Outcome(
        done=f"{len(corpus)} malformed or hostile SIP messages (tests/data/sip_corpus/) over raw UDP to livekit-sip "
             f"({suite.server}), then a normal call",
        expected="livekit-sip stays up (same process, healthy); each message gets RFC 3261's answer, or is dropped "
                 "where that is safe; once the probes' own calls have ended, a normal call is greeted",
        happened=(f"livekit-sip {'up, same pid' if survived else 'DOWN or restarted'}; "
                  + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
                  + f"; the probes' calls gone after {seconds(cleared_s)}; normal call after: "
                  + "; ".join(attempts[:3])),
        figures={"messages": str(len(corpus)), **{v: str(n) for v, n in counts.items()},
                 "probe calls gone after": seconds(cleared_s), "normal call greeted after": seconds(normal_s),
                 "calls until greeted": str(len(attempts))},
        ok=survived and counts["UNEXPECTED"] == 0 and normal_s is not None and len(attempts) == 1,
        details=details,
    )


def _cell(text: str) -> str:
    text = text.replace("|", "\\|")
    return text if len(text) < 160 else text[:157] + "..."


@scenario("endpoint-abuse", "AI endpoint abuse")
def endpoint_abuse(suite: Suite) -> Outcome:
    from bench.endpoint_abuse import Endpoint, run_probes

    settings = suite.settings
    before = lifecycle.status(settings, ["local-openai"])[0]
    endpoint = Endpoint(settings.local_openai_port, settings.local_openai_api_key,
                        settings.local_openai_max_upload_mb, settings.local_openai_max_audio_s)
    probes = run_probes(endpoint, suite.progress)
    after = lifecycle.status(settings, ["local-openai"])[0]
    survived = after.up and after.pid == before.pid and endpoint.healthy()
    right = sum(1 for probe in probes if probe.ok)
    details = ["| abuse | expected | got | |", "|---|---|---|---|"]
    details += [f"| {p.name} | {p.expected} | {p.got}{' — ' + _cell(p.detail) if p.detail else ''} | "
                f"{'ok' if p.ok else 'WRONG'} |" for p in probes]
    return Outcome(
        done=f"{len(probes)} hostile or careless requests to the running endpoint (models loaded) on "
             f"127.0.0.1:{settings.local_openai_port}; the same guards are unit-tested case by case with stand-in "
             "models in tests/test_local_openai_guard.py",
        expected="each gets its status (413, 400 naming the field, 403, 421, 401; a 200 after clients that left); "
                 "the endpoint never crashes",
        happened=f"{right}/{len(probes)} right; endpoint {'up, same pid' if survived else 'DOWN or restarted'}",
        figures={"probes": str(len(probes)), "right": str(right), "endpoint alive": "yes" if survived else "NO"},
        ok=survived and right == len(probes),
        details=details,
    )


# --- the report ------------------------------------------------------------------------------------------------------
def run(suite: Suite, names: list[str] | None = None) -> dict[str, Outcome]:
    """Each chosen scenario in the registry's order; a scenario that raises is a failed row, not a stopped run."""
    outcomes: dict[str, Outcome] = {}
    for name, entry in SCENARIOS.items():
        if names and name not in names:
            continue
        wait_until_no_calls(suite.settings)  # a call of the previous scenario still closing would take the line
        suite.progress(f"{entry.title} ...")
        started = time.monotonic()
        try:
            outcome = entry.run(suite)
        except Exception as error:  # the row says what broke; the rest of the suite still runs
            outcome = Outcome(done="-", expected="-", happened=f"the scenario failed: {type(error).__name__}: {error}")
        outcome.figures.setdefault("scenario time", f"{time.monotonic() - started:.0f} s")
        suite.progress(f"{entry.title}: {'PASS' if outcome.ok else 'FAIL'}: {outcome.happened}")
        outcomes[name] = outcome
    return outcomes


def report(outcomes: dict[str, Outcome], suite: Suite, elapsed: float, warm_up: str,
           load: tuple[float, float], arguments: str = "") -> str:
    ended = time.time()
    lines = [
        "## Reliability suite (bench/reliability.py)", "",
        f"Run {time.strftime('%Y-%m-%d %H:%M', time.gmtime(ended - elapsed))}–"
        f"{time.strftime('%H:%M UTC', time.gmtime(ended))} on {platform.machine()} with {os.cpu_count()} CPU cores, "
        f"local models, in {elapsed / 60:.0f} min; the "
        f"machine's load average (other work included) was {load[0]:.1f} at the start and {load[1]:.1f} at the end; "
        f"`python -m bench.reliability {arguments}` (as `make reliability` runs it: a stack of its own in a network "
        f"namespace of its own). Before the scenarios, a warm-up: {warm_up}.", "",
        "| scenario | what was done | expected | what happened | figures | result |", "|---|---|---|---|---|---|"]
    for name, outcome in outcomes.items():
        entry = SCENARIOS[name]
        figures = "<br>".join(f"{key}: {value}" for key, value in outcome.figures.items())
        lines.append(f"| {entry.title} | {_cell_long(outcome.done)} | {_cell_long(outcome.expected)} "
                     f"| {_cell_long(outcome.happened)} | {figures} | {'PASS' if outcome.ok else 'FAIL'} |")
    for name, outcome in outcomes.items():
        if outcome.details:
            lines += ["", f"### {SCENARIOS[name].title}", "", *outcome.details]
    return "\n".join(lines)


def _cell_long(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100, help="calls in the sequential-calls scenario")
    parser.add_argument("--minutes", type=float, default=30, help="the sequential calls stop after this long")
    parser.add_argument("--bursts", type=int, default=5, help="rounds of the burst scenario")
    parser.add_argument("--only", default="", help=f"comma-separated scenarios (of: {', '.join(SCENARIOS)})")
    parser.add_argument("--write", type=Path, help="write the results into this Markdown file")
    args = parser.parse_args()
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    if not 1 <= args.calls <= 1000:
        parser.error("--calls is between 1 and 1000")
    if not 1 <= args.bursts <= 20:
        parser.error("--bursts is between 1 and 20")
    suite = Suite(Settings.load(), sequential_calls=args.calls, sequential_minutes=args.minutes,
                  burst_rounds=args.bursts)
    down = [s.name for s in lifecycle.status(suite.settings) if not s.up]
    if down:
        print(f"error: {', '.join(down)} not running: start the stack first (python cli.py up)", file=sys.stderr)
        return 2
    started, load_at_start = time.monotonic(), os.getloadavg()[0]
    try:
        warm_up = suite.warm_up()
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    outcomes = run(suite, names)
    text = report(outcomes, suite, time.monotonic() - started, warm_up, (load_at_start, os.getloadavg()[0]),
                  " ".join(sys.argv[1:]))
    print(text)
    if args.write:
        replace_section(args.write, "bench/reliability.py", text, title="# Reliability")
        print(f"wrote {args.write}", file=sys.stderr)
    return 0 if all(o.ok for o in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
