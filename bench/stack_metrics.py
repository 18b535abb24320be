"""What the stack itself says during a benchmark level: the agent's per-turn metrics from its log, and CPU and
peak memory of each component's process tree."""

from __future__ import annotations

import json
import os
import re
import resource
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from stack.supervision import running_programs

TURN_METRICS = re.compile(r"turn metrics (\{.*?\})(?:\"|$)")
AGENT_STAGES = ("end_of_turn_delay", "transcription_delay", "llm_node_ttft", "tts_node_ttfb", "e2e_latency")


class LogTail:
    """A component's log from now on, read a piece at a time."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def read_new(self) -> bytes:
        """What was written since the last read (b"" while there is no file)."""
        try:
            with open(self.path, "rb") as log:
                if os.fstat(log.fileno()).st_size < self.offset:  # rotated (stack/logs.py): the new file from its start
                    self.offset = 0
                log.seek(self.offset)
                data = log.read()
                self.offset = log.tell()
                return data
        except FileNotFoundError:
            return b""


class AgentLog(LogTail):
    """Reads the `turn metrics` lines the agent logged since the last read."""

    def new_turn_metrics(self) -> list[dict]:
        text = self.read_new().decode(errors="replace")
        metrics = []
        for line in text.splitlines():
            if "turn metrics" not in line:
                continue
            message, room = line, None
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                    message, room = record.get("message", line), record.get("room")
                except json.JSONDecodeError:
                    pass
            if found := TURN_METRICS.search(message):
                metrics.append(json.loads(found.group(1).replace('\\"', '"')) | ({"room": room} if room else {}))
        return metrics


def stage_p50s(metrics: list[dict]) -> dict[str, float | None]:
    """p50 in ms of each stage over the turns that report it."""
    result = {}
    for stage in AGENT_STAGES:
        values = [m[stage] * 1000 for m in metrics if isinstance(m.get(stage), (int, float))]
        result[stage] = float(np.percentile(values, 50)) if values else None
    return result


def line_delays(results, metrics: list[dict], wall_minus_monotonic: float,
                callers: list[str] | None = None) -> dict[str, float | None]:
    """The phone line's share of voice-to-voice, p50 in ms: "in" = the caller's end of speech (the softphone) -> the
    end of speech the agent's VAD reports; "out" = the agent starts speaking (its own metrics) -> the caller hears the
    first audio. The softphone times on CLOCK_MONOTONIC and the agent on the wall clock: `wall_minus_monotonic` joins
    them. With calls at once, `callers` (each result's caller number) tells their turns apart: the agent's log names
    the room, which carries the caller number's last two digits (agent/redact.py masks the rest)."""
    inbound, outbound = [], []
    for index, result in enumerate(results):
        own = metrics if callers is None else [m for m in metrics if same_caller(m.get("room", ""), callers[index])]
        heard = [m["stopped_speaking_at"] for m in own
                 if isinstance(m.get("transcription_delay"), (int, float)) and m.get("stopped_speaking_at")]
        spoke = [m["started_speaking_at"] for m in own
                 if isinstance(m.get("e2e_latency"), (int, float)) and m.get("started_speaking_at")]
        for turn in result.turns:
            if result.started_at is None or turn.speech_end_ms is None or turn.reply_start_ms is None:
                continue
            speech_end = result.started_at + turn.speech_end_ms / 1000 + wall_minus_monotonic
            reply = result.started_at + turn.reply_start_ms / 1000 + wall_minus_monotonic
            if ends := [t - speech_end for t in heard if -0.5 <= t - speech_end <= 2.0]:
                inbound.append(1000 * min(ends, key=abs))
            if starts := [reply - t for t in spoke if -0.2 <= reply - t <= 2.0]:
                outbound.append(1000 * min(starts, key=abs))
    return {"in": float(np.percentile(inbound, 50)) if inbound else None,
            "out": float(np.percentile(outbound, 50)) if outbound else None}


def same_caller(room: str, caller: str) -> bool:
    """Whether the room ("call-_+•••••••01_sX55Ydd27vKB") is a call from `caller`."""
    return bool(re.search(rf"{re.escape(caller[-2:])}_[^_]+$", room))


CALLERS = "softphones"  # the bench's own calls: on a real line the caller's phone is elsewhere, here it shares the CPU


class ProcessSampler:
    """CPU use (in cores) and peak RSS of each running component's process tree, sampled in the background; and the
    CPU of this process and its finished children (the softphones that placed the calls) as CALLERS."""

    def __init__(self, run_dir: Path, interval: float = 0.5):
        self.run_dir = run_dir
        self.interval = interval
        self.peak_rss: dict[str, int] = {}
        self._cpu_start: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _trees(self) -> dict[str, list[psutil.Process]]:
        trees = {}
        for name, root in sorted(running_programs(self.run_dir).items()):
            try:
                trees[name] = [root, *root.children(recursive=True)]
            except psutil.Error:
                pass
        return trees

    @staticmethod
    def _cpu(processes: list[psutil.Process]) -> float:
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for name, processes in self._trees().items():
                self.peak_rss[name] = max(self.peak_rss.get(name, 0), total_rss(processes))

    @staticmethod
    def _own_cpu() -> float:
        return sum(usage.ru_utime + usage.ru_stime for usage in (resource.getrusage(resource.RUSAGE_SELF),
                                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))

    def __enter__(self) -> ProcessSampler:
        self._started = time.monotonic()
        self._cpu_start = {name: self._cpu(procs) for name, procs in self._trees().items()}
        self._cpu_start[CALLERS] = self._own_cpu()
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        wall = time.monotonic() - self._started
        self.cpu_cores = {name: (self._cpu(procs) - self._cpu_start.get(name, 0.0)) / wall
                          for name, procs in self._trees().items()}
        self.cpu_cores[CALLERS] = (self._own_cpu() - self._cpu_start[CALLERS]) / wall


def total_rss(processes) -> int:
    """Bytes resident in these processes (those that exited meanwhile count nothing)."""
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total
