"""Does Whisper's own confidence tell a garbled caller turn from a heard one? Labelled by what the agent would do.

    .venv/bin/python bench/stt_confidence.py [--voices piper,espeak] [--every 3] [--write docs/quality.md]
    .venv/bin/python bench/stt_confidence.py --live .run/eval/calls.sqlite3   # the last `make eval`'s live turns

Caller utterances (the labelled intent set, every `--every`th one; the bakery's fact questions and near misses; the
STT benchmark's sentences) are spoken by Piper and espeak-ng over an 8 kHz mu-law line and transcribed by the agent's
STT (local_openai.stt, with the business's vocabulary prompt). Each turn is decided by the bakery's TurnPolicy twice:
on the words as written and on the words as heard. A turn is *misheard* when the two decisions differ (another
action, sentence or knowledge-base answer), or when both go to the LLM and half the words or more are wrong. For each
confidence threshold: how many misheard turns would get "please say that again" instead (caught), and how many heard
turns would be asked again needlessly; over all turns, and over the turns that would go to the LLM with no fact beside
them. Last, what the shipped policy (agent/turn_policy.py, given the confidence) does with them.

`--live` reads the same from real calls instead: the call store of a `make eval` run, where each caller turn keeps
the confidence the agent's STT gave it over SIP, matched in order to the scenario lines the caller said.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.stt import confidence_from_segments  # noqa: E402
from agent.turn_policy import (  # noqa: E402
    PARDON,
    PARDON_THRESHOLD,
    PARDON_THRESHOLD_FREE_ANSWER,
    Act,
    Answer,
    Say,
    Turn,
    TurnPolicy,
)
from bench.report import replace_section  # noqa: E402
from bench.stt_wer import PHONE_RATE, SENTENCES, normalise, progress, synthesize_all, word_errors  # noqa: E402
from stack.settings import Settings  # noqa: E402

DATA = ROOT / "tests" / "data"
BAKERY = Settings.of(BUSINESS_CONFIG=str(DATA / "bakery.toml"))
THRESHOLDS = (0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60)
GARBLED_WER = 0.5


def utterances(every: int) -> list[str]:
    with (DATA / "caller_intents.csv").open(newline="") as handle:
        intents = [row["utterance"] for row in csv.DictReader(handle)][::every]
    questions = []
    for name in ("bakery_facts_eval.csv", "bakery_near_misses.csv"):
        with (DATA / name).open(newline="") as handle:
            questions += [row["question"] for row in csv.DictReader(handle)]
    return list(dict.fromkeys(intents + questions + SENTENCES))


def signature(decision) -> tuple:
    if isinstance(decision, Act):
        return ("act", decision.tool)
    if isinstance(decision, Say):
        return ("say", decision.text)
    assert isinstance(decision, Answer)
    return ("llm", decision.facts)


@dataclass
class Heard:
    voice: str
    said: str
    heard: str
    confidence: float
    wer: float
    misheard: bool
    free_answer: bool  # heard, it would go to the LLM with no fact beside it
    pardoned: bool  # the shipped policy asks it again


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", default="piper,espeak")
    parser.add_argument("--every", type=int, default=3, help="take every Nth utterance of the labelled intent set")
    parser.add_argument("--write", type=Path, help="replace this section of a Markdown file with the table")
    parser.add_argument("--live", type=Path, help="a spoken evaluation's call store (calls.sqlite3) to read instead")
    args = parser.parse_args(argv)

    saturday_noon = datetime(2026, 12, 5, 12, 0)
    policy = TurnPolicy.load(BAKERY, now=lambda zone: saturday_noon.replace(tzinfo=zone or ZoneInfo("UTC")))
    if args.live:
        turns = live_turns(args.live, policy)
        lines = [f"Live turns of the spoken evaluation in {args.live}:", "", *report(turns, f"--live {args.live}")]
        print("\n".join(lines))
        return 0

    from local_openai.stt import SpeechToText, text_of

    prompt = policy.transcription_prompt()
    said = utterances(args.every)
    progress(f"{len(said)} utterances; synthesizing")
    calls = synthesize_all(args.voices.split(","), said)
    stt = SpeechToText()
    results: list[Heard] = []
    for voice, audios in calls.items():
        for index, (text, audio) in enumerate(zip(said, audios, strict=True), start=1):
            segments = stt.segments(audio, PHONE_RATE, language="en", prompt=prompt)
            heard = text_of(segments)
            results.append(judge(policy, voice, text, heard, confidence_from_segments(segments) or 0.0))
            if index % 50 == 0:
                progress(f"{voice}: {index}/{len(said)} transcribed and decided")
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()} with "
             f"{os.cpu_count()} CPU cores, in-process (no call), the bakery profile (tests/data/bakery.toml), "
             f"Whisper {stt.model_name} with the vocabulary prompt, 8 kHz mu-law.", "", *report(results)]
    print("\n".join(lines))
    if args.write:
        replace_section(args.write, "bench/stt_confidence.py",
                        "\n".join(["## Asking a garbled turn again: the STT's confidence (bench/stt_confidence.py)",
                                   "", *lines]))
    return 0


def judge(policy: TurnPolicy, voice: str, said: str, heard: str, confidence: float) -> Heard:
    """One caller turn, labelled: misheard or not, and whether the shipped policy asks it again."""
    reference, hypothesis = normalise(said), normalise(heard)
    wer = word_errors(reference, hypothesis) / max(len(reference), 1)
    expected = signature(policy.decide([Turn("user", said)]))
    got = signature(policy.decide([Turn("user", heard)]))
    misheard = expected != got or (expected[0] == "llm" and wer >= GARBLED_WER)
    pardoned = getattr(policy.decide([Turn("user", heard, confidence)]), "text", None) == PARDON
    return Heard(voice, said, heard, confidence, wer, misheard, got == ("llm", ()), pardoned)


def live_turns(database: Path, policy: TurnPolicy) -> list[Heard]:
    """The caller turns of a spoken evaluation's calls, each matched to the line said. bench/spoken_eval.py dials
    from +1555(0401 + n) for its n-th call, each voice through every scenario in file order; a call whose caller
    turns do not match its lines one to one (a line split in two, a retried call's first try) is left out."""
    from bench.spoken_eval import load_scenarios
    from calls.store import CallStore

    scenarios = load_scenarios().scenarios
    store = CallStore.at(f"sqlite:///{database}")
    try:
        calls = sorted(store.list_calls(limit=None, turns=True), key=lambda call: call.started_at)
    finally:
        store.close()
    latest = {call.caller_number: call for call in calls}  # a retried call: its last try
    results, skipped = [], 0
    for number, call in sorted(latest.items()):
        index = int(number[-4:]) - 401 if number and number[-4:].isdigit() else -1
        if not 0 <= index < 2 * len(scenarios):
            continue
        voice, scenario = ("piper", "espeak")[index // len(scenarios)], scenarios[index % len(scenarios)]
        turns = [turn for turn in call.turns if turn.role == "user"]
        if len(turns) != len(scenario.lines) or any((turn.metrics or {}).get("transcript_confidence") is None
                                                    for turn in turns):
            skipped += 1
            continue
        results += [judge(policy, voice, line.say, turn.text, turn.metrics["transcript_confidence"])
                    for line, turn in zip(scenario.lines, turns, strict=True)]
    progress(f"{len(results)} live turns matched to their lines; {skipped} calls left out")
    return results


def report(results: list[Heard], command: str = "--write docs/quality.md") -> list[str]:
    command = f"`.venv/bin/python bench/stt_confidence.py {command}`"
    voices = sorted({r.voice for r in results}, key=["piper", "espeak"].index)
    lines = [f"Rerun: {command} ({len(results)} turns; misheard: the policy decides differently on the words as "
             f"heard, or an LLM turn has WER >= {GARBLED_WER:.0%}).", ""]
    header = "| threshold | " + " | ".join(f"{v}: misheard caught | {v}: heard asked again" for v in voices) + " |"

    def cells(turns: list[Heard], asked) -> str:
        out = []
        for voice in voices:
            bad = [r for r in turns if r.voice == voice and r.misheard]
            good = [r for r in turns if r.voice == voice and not r.misheard]
            caught, needless = sum(map(asked, bad)), sum(map(asked, good))
            out += [f"{caught}/{len(bad)} ({caught / max(len(bad), 1):.0%})",
                    f"{needless}/{len(good)} ({needless / max(len(good), 1):.1%})"]
        return " | ".join(out)

    for title, turns in (("All turns", results),
                         ("Turns that would go to the LLM with no fact beside them", [r for r in results
                                                                                     if r.free_answer])):
        lines += [f"{title}:", "", header, "|" + "---|" * (1 + 2 * len(voices))]
        for threshold in THRESHOLDS:
            lines.append(f"| {threshold:.2f} | " + cells(turns, lambda r, t=threshold: r.confidence < t) + " |")
        lines.append("")
    lines += [f"Shipped (PARDON_THRESHOLD {PARDON_THRESHOLD}, {PARDON_THRESHOLD_FREE_ANSWER} for a free answer):", "",
              header, "|" + "---|" * (1 + 2 * len(voices)),
              "| policy | " + cells(results, lambda r: r.pardoned) + " |"]
    lines += ["", "Misheard turns, lowest confidence first (said -> heard, confidence):", ""]
    for r in sorted((r for r in results if r.misheard), key=lambda r: r.confidence)[:40]:
        lines.append(f"- {r.voice}: \"{r.said}\" -> \"{r.heard}\" ({r.confidence:.2f})")
    lines += ["", "Heard turns with the lowest confidence:", ""]
    for r in sorted((r for r in results if not r.misheard), key=lambda r: r.confidence)[:15]:
        lines.append(f"- {r.voice}: \"{r.said}\" -> \"{r.heard}\" ({r.confidence:.2f})")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
