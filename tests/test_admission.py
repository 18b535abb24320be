"""Admission under a burst (agent/admission.py): every caller gets a conversation, a spoken "busy", or a 486 at once,
and calls being admitted count as much as running ones. Also the per-call provider check (agent/failures.py)."""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path

import pytest
import yaml

from agent.admission import Admission, Verdict
from agent.failures import ProviderHealth
from stack import components
from stack.settings import Settings

pytestmark = pytest.mark.unit


def room(n: int) -> str:
    return f"call-_+1555010{n % 10}{n // 10}_r{n}"


@pytest.mark.parametrize("max_calls", [1, 2, 4])
def test_a_burst_before_any_job_runs_fills_each_line_once(max_calls):
    """2 x capacity + 1 callers at once, none of whose jobs has started: capacity conversations, as many told busy,
    the last turned away."""
    lines = Admission(max_calls)
    verdicts = [lines.admit(f"job{n}", room(n), running={}) for n in range(2 * max_calls + 1)]
    assert verdicts == [Verdict.SERVE] * max_calls + [Verdict.BUSY] * max_calls + [Verdict.TURN_AWAY]


def test_a_call_counts_from_admission_through_its_job_until_the_job_ends():
    lines = Admission(1)
    assert lines.admit("a", room(1), running={}) is Verdict.SERVE
    lines.settled("a")  # its job started: from here on it is among the running jobs
    assert lines.admit("b", room(2), running={"a": room(1)}) is Verdict.BUSY
    lines.settled("b")
    assert lines.admit("c", room(3), running={"a": room(1), "b": room(2)}) is Verdict.TURN_AWAY
    # The conversation ended; the busy line still speaks: the next caller gets the free conversation.
    assert lines.admit("d", room(4), running={"b": room(2)}) is Verdict.SERVE


def test_a_call_whose_job_never_starts_frees_its_line():
    lines = Admission(1)
    assert lines.admit("a", room(1), running={}) is Verdict.SERVE
    lines.settled("a")  # the assignment timed out: no job
    assert lines.admit("b", room(2), running={}) is Verdict.SERVE


def test_the_job_being_both_admitting_and_running_counts_once():
    lines = Admission(2)
    lines.admit("a", room(1), running={})
    # active_jobs has it a moment before accept() returns and settled() runs
    assert lines.admit("b", room(2), running={"a": room(1)}) is Verdict.SERVE
    assert lines.load({"a": room(1)}) == pytest.approx(2 / 5)


def test_calls_being_admitted_count_for_the_repeat_caller_limit():
    lines = Admission(4, per_caller=1)
    assert lines.admit("a", "call-_+15550123_x", running={}) is Verdict.SERVE
    assert lines.admit("b", "call-_+15550123_y", running={}) is Verdict.REPEAT_CALLER
    assert lines.admit("c", "call-_+15550124_z", running={}) is Verdict.SERVE


def test_load_stays_below_livekits_target_load_with_every_line_taken():
    """livekit-server dispatches only below agents.target_load; at full the worker must still be offered the next
    call, to turn it away (486) rather than leave it ringing."""
    target_load = yaml.safe_load(_livekit_server_config())["agents"]["target_load"]
    lines = Admission(2)
    running = {}
    loads = [lines.load(running)]
    for n in range(lines.lines):
        running[f"job{n}"] = room(n)
        loads.append(lines.load(running))
    assert loads == sorted(loads) and loads[0] == 0
    assert loads[-1] < target_load


def _livekit_server_config() -> str:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings.load(env_file=Path(folder) / "no.env", run_dir=folder, environ={})
        command = components.LIVEKIT_SERVER.command(settings)
        return Path(command[command.index("--config") + 1]).read_text()


def test_a_burst_with_jobs_starting_at_random_moments_never_exceeds_the_lines():
    """livekit-agents runs each on_request as its own task: accept() waits for the server's assignment and a warm
    process (here: a random delay), and only then does the job show among the running ones. Many interleavings, each
    bounded: never more than capacity conversations nor 2 x capacity calls on lines at any moment."""
    rng = random.Random(11)

    async def burst(max_calls: int, callers: int) -> list[Verdict]:
        lines = Admission(max_calls)
        running: dict[str, str] = {}
        peak = {"conversations": 0, "calls": 0}

        async def on_request(n: int) -> Verdict:
            await asyncio.sleep(rng.random() * 0.01)  # arrival
            job = f"job{n}"
            verdict = lines.admit(job, room(n), dict(running))
            if verdict is Verdict.TURN_AWAY:
                return verdict
            await asyncio.sleep(rng.random() * 0.02)  # assignment + a warm process
            running[job] = room(n)
            lines.settled(job)
            served = sum(lines.verdicts.get(j) is Verdict.SERVE for j in running)
            peak["conversations"] = max(peak["conversations"], served)
            peak["calls"] = max(peak["calls"], len(running))
            await asyncio.sleep(rng.random() * 0.03)  # the call
            del running[job]
            return verdict

        verdicts = await asyncio.gather(*(on_request(n) for n in range(callers)))
        assert peak["conversations"] <= max_calls and peak["calls"] <= 2 * max_calls
        return verdicts

    for _ in range(50):
        max_calls = rng.choice([1, 2, 3])
        verdicts = asyncio.run(burst(max_calls, 2 * max_calls + 1 + rng.randrange(4)))
        assert Verdict.SERVE in verdicts


def test_the_provider_check_is_cached_briefly_and_asked_again_after():
    answers = ["down", None]
    asked = []
    now = [0.0]

    def check(providers, timeout):
        asked.append(now[0])
        return answers[len(asked) - 1]

    health = ProviderHealth(providers=None, ttl=5.0, check=check, clock=lambda: now[0])
    assert asyncio.run(health.problem()) == "down"
    now[0] = 4.0
    assert asyncio.run(health.problem()) == "down" and asked == [0.0]  # cached
    now[0] = 5.5
    assert asyncio.run(health.problem()) is None and asked == [0.0, 5.5]  # the endpoint came back
    health.forget()
    answers.append("down again")
    assert asyncio.run(health.problem()) == "down again"
