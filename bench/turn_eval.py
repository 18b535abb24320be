"""End of turn over a phone line: how fast a caller who has finished is answered, and how often one who only paused
mid-sentence is cut off, for the two turn detectors the agent can use.

    .venv/bin/python -m bench.turn_eval [--voices piper,espeak] [--write docs/benchmarks.md]

tests/data/turn_pauses.csv holds caller sentences split where a caller may pause ("I'd like to order a cake for" |
"my daughter's birthday on Saturday."). The whole sentence is a finished turn; the words before the pause are an
unfinished one. Each is spoken by two voices (Piper and espeak-ng), sent through a phone line (8 kHz, G.711 mu-law),
then scored by
- "audio": livekit-agents' bundled audio detector (turn-detector-v1-mini from livekit-local-inference) on what a session
  gives it: the last 1.2 s at 16 kHz, with the silence after which livekit-agents asks it (MIN_SILENCE_DURATION_MS);
- "transcript": the local endpoint's end-of-turn model (local_openai/turn_end.py, what agent/turn_end.py asks) on the
  local STT's transcript of the same audio, after the greeting as our last words.
A turn whose P(end) is under the threshold waits `max_delay` after the caller's last word; any other waits
`min_delay` (or its transcript, if that comes later).

Reported per threshold: the share of finished turns let go at `min_delay` (fast), and the share of unfinished turns
let go at `min_delay` (those callers are cut off if their pause outlasts it).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.report import replace_section
from bench.stt_wer import VOICES, _resample, phone_line
from stack.settings import REPO_ROOT

PAUSES = REPO_ROOT / "tests" / "data" / "turn_pauses.csv"
DETECTOR_RATE = 16000
WINDOW_S = 1.2  # what the local detector reads (livekit.local_inference.EOT_MAX_SAMPLES)
THRESHOLDS = {"audio": (0.1, 0.2, 0.3, 0.36, 0.45), "transcript": (0.003, 0.005, 0.01, 0.02, 0.05)}
LAST_REPLY = "Thank you for calling Lakeside Bakery. How can I help you?"


@dataclass(frozen=True)
class Turn:
    text: str
    finished: bool


def load_turns(path: Path = PAUSES) -> list[Turn]:
    turns = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            before, after = row["before_pause"].strip(), row["after_pause"].strip()
            turns += [Turn(before, finished=False), Turn(f"{before} {after}", finished=True)]
    return turns


def detector_input(speech: np.ndarray, rate: int, trailing_silence_s: float) -> np.ndarray:
    """What the session's detector reads when it is asked: the caller's phone audio at 16 kHz, then the silence
    heard so far, cut to the detector's window (int16)."""
    narrow = (phone_line(speech, rate) * 32767).astype(np.int16)
    wide = _resample(narrow, 8000, DETECTOR_RATE)
    padded = np.concatenate([wide, np.zeros(int(trailing_silence_s * DETECTOR_RATE), np.int16)])
    return padded[-int(WINDOW_S * DETECTOR_RATE):]


def score(voices: list[str], turns: list[Turn], trailing_silence_s: float) -> dict[tuple[str, str], list[float]]:
    """P(end) for each turn, per (detector, voice), in the order of `turns`."""
    from livekit.local_inference import EOT

    from local_openai.stt import SpeechToText
    from local_openai.turn_end import TurnEndModel
    from stack.settings import Settings

    audio_detector = EOT()
    stt = SpeechToText()
    transcript_detector = TurnEndModel(Settings.load().local_llm_model)
    scores: dict[tuple[str, str], list[float]] = {}
    for name in voices:
        try:
            voice = VOICES[name]()
        except RuntimeError as error:
            print(f"[turn_eval] {error}", file=sys.stderr)
            continue
        by_audio, by_transcript = scores[("audio", name)], scores[("transcript", name)] = [], []
        for index, turn in enumerate(turns, 1):
            speech, rate = voice.speak(turn.text)
            by_audio.append(float(audio_detector.predict(detector_input(speech, rate, trailing_silence_s))))
            heard = stt.transcribe(phone_line(speech, rate), 8000)
            by_transcript.append(transcript_detector.probability(heard, LAST_REPLY))
            if index % 40 == 0 or index == len(turns):
                print(f"[turn_eval] {name}: {index}/{len(turns)} turns scored", file=sys.stderr, flush=True)
    return scores


def rates(turns: list[Turn], probabilities: list[float], threshold: float) -> tuple[float, float]:
    """(finished turns let go at min_delay, unfinished turns let go at min_delay) for one threshold."""
    fast = [p >= threshold for p in probabilities]
    finished = [f for f, t in zip(fast, turns) if t.finished]
    unfinished = [f for f, t in zip(fast, turns) if not t.finished]
    return sum(finished) / len(finished), sum(unfinished) / len(unfinished)


def table(turns: list[Turn], scores: dict[tuple[str, str], list[float]]) -> list[str]:
    rows = []
    for detector in THRESHOLDS:
        keys = [key for key in scores if key[0] == detector]
        if not keys:
            continue
        rows += ["", f"{detector} detector, finished turns let go at once (fast) / unfinished ones too (cut):", "",
                 "| voice | P(end) median, finished | P(end) median, unfinished | "
                 + " | ".join(f"threshold {t:g}" for t in THRESHOLDS[detector]) + " |",
                 "|---|---|---|" + "---|" * len(THRESHOLDS[detector])]
        for key in keys:
            probabilities = scores[key]
            finished = [p for p, t in zip(probabilities, turns) if t.finished]
            unfinished = [p for p, t in zip(probabilities, turns) if not t.finished]
            cells = ["{:.0%} / {:.0%}".format(*rates(turns, probabilities, t)) for t in THRESHOLDS[detector]]
            rows.append(f"| {key[1]} | {statistics.median(finished):.3f} | {statistics.median(unfinished):.3f} | "
                        + " | ".join(cells) + " |")
    return rows[1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", default="piper,espeak", help="comma-separated: piper, espeak")
    parser.add_argument("--silence", type=float, default=0.2,
                        help="seconds of silence after the last word when the detector is asked (livekit-agents: 0.2)")
    parser.add_argument("--write", type=Path, help="replace this script's section in a markdown file")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    turns = load_turns()
    started = time.monotonic()
    scores = score(args.voices.split(","), turns, args.silence)
    if not scores:
        return 1
    rows = table(turns, scores)
    print("\n".join(rows))
    if args.write:
        command = "python -m bench.turn_eval " + shlex.join(argv if argv is not None else sys.argv[1:])
        method = (
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()} with "
            f"{os.cpu_count()} CPU cores, the detectors alone (no call), {time.monotonic() - started:.0f} s: "
            f"`{command.strip()}`. {len(turns) // 2} caller sentences from {PAUSES.relative_to(REPO_ROOT)}, each "
            f"whole (finished) and cut where a caller may pause (unfinished), in two voices over 8 kHz mu-law, "
            f"{args.silence:g} s of silence after the last word for the audio detector, the local STT's transcript "
            "(Whisper tiny.en) for the transcript one. \"fast\" = finished turns whose P(end) reaches the threshold "
            "(let go at min_delay); \"cut\" = unfinished turns that reach it (let go at min_delay too: the caller "
            "is cut off if the pause lasts longer than the transcript takes to come).")
        section = "\n".join(["## End of turn over a phone line (bench/turn_eval.py)", "", method, "", *rows])
        replace_section(args.write, "bench/turn_eval.py", section, title="# Benchmarks")
        print(f"[turn_eval] wrote {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
