"""Call benchmark: N real SIP calls of M turns each, at several concurrencies, through the running stack.

    python cli.py up            # the stack, the local endpoint and the agent
    unshare -n ... not needed when the stack runs on this machine's loopback; otherwise run inside the same namespace
    python -m bench.calls --calls 4 --turns 2 --concurrency 1,2,4 [--write docs/benchmarks.md]

Prints INVITE -> greeting and voice-to-voice (end of the caller's speech -> first agent audio, at the caller) p50/p95.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.report import replace_section
from bench.stack_metrics import AGENT_STAGES, AgentLog, ProcessSampler, line_delays, stage_p50s
from stack.settings import Settings
from tools.softphone import CallOptions, CallResult, place_call_in_subprocess, synthesize, write_wav
from tools.softphone.command import dial_defaults

QUESTIONS = [
    "What are your opening hours?",
    "Where are you located?",
    "Do you take new patients?",
    "Can I book a cleaning next week?",
]
# Between levels: the last level's jobs take a moment to close, and until then they count against
# AGENT_MAX_CALLS (a call over it hears "all lines busy").
SETTLE_S = 5


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def caller_ids(concurrency: int, calls: int) -> list[str]:
    """One number per call of a level, unique in its last two digits (what the agent's log keeps of it)."""
    return [f"+1555020{index % 10}{concurrency}" for index in range(calls)]


def run_level(concurrency: int, callers: list[str], lines: list[str], server: str, number: str, timeout: float):
    def one(index: int) -> CallResult:
        options = CallOptions(server=server, number=number, caller_id=callers[index], play=lines, transcribe=False,
                              timeout=timeout)
        return place_call_in_subprocess(options, timeout=timeout * (len(lines) + 3) + 120)

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(len(callers))))
    return results, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=4, help="calls per concurrency level (at least the level)")
    parser.add_argument("--turns", type=int, default=2, help="caller utterances per call")
    parser.add_argument("--concurrency", default="1,2,4", help="comma-separated levels")
    parser.add_argument("--server", help="SIP server host:port (default 127.0.0.1:$SIP_PORT)")
    parser.add_argument("--number", help="number to dial (default: first of SIP_NUMBERS)")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--write", type=Path, help="write the results table into this Markdown file")
    parser.add_argument("--run-dir", type=Path, default=Settings.load().run_dir,
                        help="the stack's run folder, for the agent's log and the process list (default: the "
                             "settings', PHONE_RUN_DIR or .run)")
    args = parser.parse_args()
    agent_log = AgentLog(args.run_dir / "logs" / "agent.log")
    stage_rows, process_rows = [], []

    server, number = dial_defaults()
    server, number = args.server or server, args.number or number
    levels = [int(level) for level in args.concurrency.split(",") if level.strip()]
    print(f"synthesizing {args.turns} caller lines with the local TTS ...", file=sys.stderr, flush=True)
    from local_openai.tts import TextToSpeech

    tts = TextToSpeech()
    folder = Path(tempfile.mkdtemp(prefix="bench-calls-"))
    lines = []
    for index in range(args.turns):
        path = folder / f"line{index}.wav"
        write_wav(path, synthesize(QUESTIONS[index % len(QUESTIONS)], tts))
        lines.append(str(path))

    rows = []
    for position, level in enumerate(levels):
        if position:
            time.sleep(SETTLE_S)
        callers = caller_ids(level, max(args.calls, level))
        print(f"concurrency {level}: {len(callers)} calls of {args.turns} turns ...", file=sys.stderr, flush=True)
        agent_log.new_turn_metrics()  # skip what came before this level
        with ProcessSampler(args.run_dir) as sampler:
            results, elapsed = run_level(level, callers, lines, server, number, args.timeout)
        metrics = agent_log.new_turn_metrics()
        stages = stage_p50s(metrics)
        stages |= line_delays(results, metrics, time.time() - time.monotonic(), callers)
        stage_rows.append((level, stages))
        process_rows.append((level, sampler.cpu_cores, sampler.peak_rss))
        greetings = [r.greeting_ms for r in results if r.greeting_ms is not None]
        answers = [r.answered_ms for r in results if r.answered_ms is not None]
        v2v = [t.voice_to_voice_ms for r in results for t in r.turns if t.voice_to_voice_ms is not None]
        turns = sum(len(r.turns) for r in results)
        failed = [r.error for r in results if not r.ok]
        rows.append((level, len(results) - len(failed), len(results), percentile(answers, 50),
                     percentile(greetings, 50), percentile(greetings, 95), percentile(v2v, 50), percentile(v2v, 95),
                     f"{len(v2v)}/{turns}", elapsed))
        for error in sorted(set(e for e in failed if e)):
            print(f"  failed: {error}", file=sys.stderr)

    header = ("| concurrency | calls ok | 200 OK p50 (ms) | greeting p50 (ms) | greeting p95 (ms) "
              "| voice-to-voice p50 (ms) | voice-to-voice p95 (ms) | replies | wall (s) |")
    table = [header, "|" + "---|" * 9]
    for level, ok, total, ans, g50, g95, v50, v95, replies, elapsed in rows:
        table.append(f"| {level} | {ok}/{total} | {fmt(ans)} | {fmt(g50)} | {fmt(g95)} | {fmt(v50)} | {fmt(v95)} "
                     f"| {replies} | {elapsed:.0f} |")
    table += ["", "The agent's own per-turn metrics (livekit-agents `ChatMessage.metrics`, p50, ms), and the phone "
              "line's share: caller -> agent = the caller's end of speech to the agent's VAD end of "
              "speech; agent -> caller = the agent starts speaking to the caller hearing it:", "",
              "| concurrency | " + " | ".join(AGENT_STAGES) + " | caller -> agent | agent -> caller |",
              "|---" * (len(AGENT_STAGES) + 3) + "|"]
    for level, stages in stage_rows:
        table.append(f"| {level} | " + " | ".join(fmt(stages.get(s)) for s in (*AGENT_STAGES, "in", "out")) + " |")
    names = sorted({name for _, cpu, _ in process_rows for name in cpu})
    table += ["", "CPU (cores busy, average over the level) and peak RSS (MB) of each process tree; softphones = the "
              "bench's own callers, which a real caller's phone does not put on this machine:", "",
              "| concurrency | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for level, cpu, rss in process_rows:
        table.append(f"| {level} | " + " | ".join(
            f"{cpu.get(n, 0):.2f} / " + (f"{rss[n] / 2**20:.0f}" if n in rss else "-") for n in names) + " |")
    print("\n".join(table))

    if args.write:
        providers = {"openai": "OpenAI", "openai-compatible": "an OpenAI-compatible server (OPENAI_BASE_URL)",
                     "local": "local models (no OPENAI_API_KEY)"}[Settings.load().ai_provider]
        section = "\n".join([
            "## Phone calls (bench/calls.py)", "",
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()} with "
            f"{os.cpu_count()} CPU cores, {providers}; {args.calls} calls per level, {args.turns} turns per call. "
            "Times are at the caller (the softphone): greeting = INVITE -> first agent audio; voice-to-voice = end "
            "of the caller's speech -> first agent audio.", "", *table])
        replace_section(args.write, "bench/calls.py", section, title="# Benchmarks")
        print(f"wrote {args.write}", file=sys.stderr)
    return 0 if all(row[1] == row[2] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
