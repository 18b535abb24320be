"""Answering-machine detection on outbound calls, measured: the agent dials (`cli.py dial`'s path, sip/dialing.py)
a softphone in this namespace that answers as a person ("Hello, this is Mike.") or as a voicemail (a greeting
spoken by the local Piper voice, then a beep), and each call's outcome in the call store is scored against what
answered. The agent uses livekit-agents' AMD with the session's own STT and LLM (the local models here).

    make amd-eval                                   # its own stack and outbound trunk; writes docs/quality.md
    python -m bench.amd_eval [--write FILE]         # a running stack whose outbound trunk points at --port
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.report import replace_section
from sip.dialing import call_and_wait
from stack.settings import Settings
from tools.softphone import PORT_RATE, CallOptions, result_from_process, run_call_process, synthesize, write_wav

PORT = 21960
PURPOSE = "Your order is ready for pickup"
# What answers, and what it is: a person says a short greeting and waits; a voicemail plays its greeting and beeps.
PEOPLE = ["Hello?", "Hello, this is Mike.", "Yeah, hi.", "Good afternoon, Sarah speaking.", "Hi, who's this?",
          "Hello, Lakeview Dental, how can I help?"]
MACHINES = [
    "Hi, you've reached Ana Lima. I can't take your call right now. Please leave a message after the tone.",
    "The person you are calling is not available. Please leave your message after the beep.",
    "Hey, it's Tom. Leave me a message and I'll call you back.",
    "You have reached the voicemail of extension two oh four. Please record your message after the tone. When you "
    "are finished, hang up.",
    "Thanks for calling Greenway Plumbing. We're out on a job right now. Leave your name and number and we'll get "
    "back to you as soon as we can.",
    "Hello, you've reached the Johnson family. We're not home. Please leave a message.",
]


@dataclass
class Trial:
    kind: str          # "person" or "machine"
    greeting: str
    outcome: str       # the call's end reason, or what went wrong
    heard: str = ""    # what the callee heard first, transcribed
    first_words_ms: float | None = None  # the callee's greeting ended -> the agent's first audio

    @property
    def predicted(self) -> str:
        if self.outcome == "voicemail_left":
            return "machine"
        if self.outcome == "voicemail_unavailable":
            return "machine (no message)"
        if self.outcome in ("caller_hung_up", "assistant_ended", "silence", "max_duration"):
            return "person"
        return f"failed: {self.outcome}"

    @property
    def right(self) -> bool:
        return self.predicted.startswith(self.kind)


def answer_as(kind: str, greeting: str, folder: Path, tts, index: int):
    if kind == "person":
        options = CallOptions(answer="answer", local_port=PORT, say=[greeting, "Okay, thanks. Bye."], hangup_after=3,
                              timeout=120, transcribe=True, reply_silence=2.0)
    else:
        wav = folder / f"voicemail{index}.wav"
        beep = (8000 * np.sin(2 * np.pi * 1000 * np.arange(int(0.6 * PORT_RATE)) / PORT_RATE)).astype(np.int16)
        write_wav(wav, np.concatenate([synthesize(greeting, tts), np.zeros(PORT_RATE // 4, np.int16), beep]))
        options = CallOptions(answer="answer", local_port=PORT, play=[str(wav)], hangup_after=40, timeout=120,
                              transcribe=True, reply_silence=3.0)
    return run_call_process(options)


def run(settings: Settings) -> list[Trial]:
    from local_openai.tts import TextToSpeech

    tts = TextToSpeech()
    trials = []
    cases = [("person", text) for text in PEOPLE] + [("machine", text) for text in MACHINES]
    with tempfile.TemporaryDirectory() as folder:
        for index, (kind, greeting) in enumerate(cases):
            callee = answer_as(kind, greeting, Path(folder), tts, index)
            time.sleep(5)  # the softphone loads its voice and listens before the call comes
            outcome = call_and_wait(settings, f"+155501{90 + index:02d}", PURPOSE, limit_s=180)
            out, err = callee.communicate(timeout=120)
            heard = result_from_process(out, err, callee.returncode)
            turn = heard.turns[0] if heard.turns else None
            trial = Trial(kind=kind, greeting=greeting, outcome=outcome.end_reason or outcome.end_detail or "none",
                          heard=(turn.reply_text or "") if turn else "",
                          first_words_ms=turn.voice_to_voice_ms if turn else None)
            trials.append(trial)
            print(f"[{index + 1}/{len(cases)}] {kind:7} -> {trial.predicted:22} "
                  f"{trial.first_words_ms or 0:6.0f} ms  {greeting[:50]!r}", flush=True)
            time.sleep(3)  # the line is free once the room is gone
    return trials


def report(trials: list[Trial]) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["## Answering-machine detection (bench/amd_eval.py)\n",
             f"Measured {stamp} on {platform.machine()} with the local models: `make amd-eval`. Each row is a real "
             "outbound call (`cli.py dial`'s path) to a softphone answering as a person (a short greeting, then "
             "waiting) or as a voicemail (a greeting in the Piper voice, then a beep). \"First words\": the callee's "
             "greeting ended -> the agent's first audio (its opening to a person, its message to a machine).\n",
             "| answered by | calls | detected right | a person taken for a machine | a machine taken for a person | "
             "first words p50 (ms) |", "|---|---|---|---|---|---|"]
    for kind in ("person", "machine"):
        group = [t for t in trials if t.kind == kind]
        waits = sorted(t.first_words_ms for t in group if t.first_words_ms is not None)
        wrong_kind = sum(t.predicted.startswith("machine" if kind == "person" else "person") for t in group)
        p50 = f"{waits[len(waits) // 2]:.0f}" if waits else "-"
        lines.append(f"| {kind} | {len(group)} | {sum(t.right for t in group)}/{len(group)} | "
                     f"{wrong_kind if kind == 'person' else '-'} | {wrong_kind if kind == 'machine' else '-'} | "
                     f"{p50} |")
    lines.append("\nEach call:\n")
    for trial in trials:
        lines.append(f"- {trial.kind}, {trial.greeting!r} -> {trial.predicted}; heard: {trial.heard[:120]!r}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", type=Path, help="replace this script's section in a Markdown file")
    args = parser.parse_args()
    trials = run(Settings.load())
    text = report(trials)
    print(text)
    if args.write:
        replace_section(args.write, "bench/amd_eval.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
