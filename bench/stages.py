"""What each stage of a turn costs with the local models alone: in-process, no HTTP, no call, nothing else running.

    .venv/bin/python -m bench.stages [--repeats 5] [--write docs/benchmarks.md]

- STT: Whisper (local_openai.stt) on caller sentences of about 3, 8 and 16 words, spoken by Piper over an 8 kHz
  mu-law line (the resampling to 16 kHz included, as on the endpoint).
- End of turn: local_openai.turn_end on a caller's words after our greeting, primed with the greeting first (as the
  agent does once a reply is spoken), so only the caller's words are new.
- LLM: raw prefill (a prompt evaluated from nothing) and decode speed in tokens/s; then a turn as the agent sends it
  (instructions and greeting cached, the caller's question and its facts new): first token, first clause (the first
  , ; : . ? or !) and first sentence (. ? or !).
- TTS: Piper's first audio (local_openai.tts, one chunk per sentence) for a short clause, a sentence and two.

Each figure is the median of `--repeats` runs after one untimed warm-up.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.report import replace_section
from bench.stt_wer import PiperVoice, phone_line

GREETING = "Thank you for calling Lakeside Bakery. How can I help you?"
CALLER = {  # words: what a caller says
    3: "Are you open?",
    8: "Do you have any gluten free bread today?",
    16: "Hi, I'd like to order a birthday cake for my daughter on Saturday, what do I need to do?",
}
QUESTION = "Can I bring my dog inside the shop?"
FACTS = ("Dogs are welcome on the terrace; only assistance dogs are allowed inside the shop.",)
SPOKEN = {  # what the assistant says: a clause, a sentence, two sentences
    "clause (4 words)": "Yes, we are open,",
    "sentence (14 words)": "Our sourdough comes out of the oven at seven, and it often sells out by noon.",
    "two sentences (26 words)": "Our sourdough comes out of the oven at seven, and it often sells out by noon. "
                                "If you like, we can keep a loaf aside for you until the evening.",
}
CLAUSE_END = re.compile(r"[,;:.?!]")
SENTENCE_END = re.compile(r"[.?!]")


def progress(line: str) -> None:
    print(f"[stages] {line}", file=sys.stderr, flush=True)


def median_ms(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up, not timed
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def first_times(pieces: Iterator[str], marks: dict[str, re.Pattern | None]) -> dict[str, float]:
    """Seconds from now to the first piece (mark None) or to the text first matching each pattern."""
    started, text, seen = time.perf_counter(), "", {}
    for piece in pieces:
        text += piece
        for name, pattern in marks.items():
            if name not in seen and (pattern is None or pattern.search(text)):
                seen[name] = time.perf_counter() - started
        if len(seen) == len(marks):
            break
    return seen


def stt_rows(repeats: int, voice: PiperVoice) -> list[tuple[str, str]]:
    from local_openai.stt import SpeechToText

    stt = SpeechToText()
    rows = []
    for words, text in CALLER.items():
        audio = phone_line(*voice.speak(text))
        ms = median_ms(lambda audio=audio: stt.transcribe(audio, 8000), repeats)
        rows.append((f"STT (Whisper {stt.model_name}), {words} words ({len(audio) / 8000:.1f} s of audio)",
                     f"{ms:.0f} ms"))
    progress("STT done")
    return rows


def turn_end_rows(repeats: int) -> list[tuple[str, str]]:
    from local_openai.turn_end import TurnEndModel
    from stack.settings import Settings

    model = TurnEndModel(Settings.load().local_llm_model)
    rows = []
    for words, text in CALLER.items():
        times = []
        for _ in range(repeats + 1):  # as in a call: primed with our reply, then the caller's words alone
            model.probability(f"{text} (another call)", "")
            model.probability("", GREETING)
            started = time.perf_counter()
            model.probability(text, GREETING)
            times.append(time.perf_counter() - started)
        rows.append((f"end of turn (transcript model, primed with our greeting), {words} words",
                     f"{1000 * statistics.median(times[1:]):.0f} ms"))
    progress("end of turn done")
    return rows


def llm_rows(repeats: int) -> list[tuple[str, str]]:
    from agent.assistant import instructions_for
    from agent.business import BusinessProfile
    from agent.turn_policy import facts_message
    from local_openai.llm import ChatModel

    model = ChatModel()
    instructions = instructions_for(BusinessProfile.load())
    rows = []

    # Raw speeds: a prompt no earlier request shares (a fresh first token), then a long answer.
    runs = iter(range(1_000_000))

    def cold_prompt() -> list[int]:
        return model.prompt_tokens([{"role": "system", "content": f"Call {next(runs)}. {instructions}"},
                                    {"role": "user", "content": CALLER[16]}])
    prefill = []
    for _ in range(repeats + 1):
        tokens = cold_prompt()
        seconds = first_times(model.stream(tokens, max_tokens=1, temperature=0.0), {"first": None})["first"]
        prefill.append(len(tokens) / seconds)
    decode = []
    for _ in range(repeats + 1):
        tokens = cold_prompt()
        first, count = None, 0
        for _piece in model.stream(tokens, max_tokens=64, temperature=0.0):
            first = first or time.perf_counter()
            count += 1
        if count > 8:
            decode.append((count - 1) / (time.perf_counter() - first))
    rows += [(f"LLM ({model.model_name}) prefill, {len(tokens)}-token prompt from nothing",
              f"{statistics.median(prefill[1:]):.0f} tokens/s"),
             ("LLM decode (up to 64 tokens)", f"{statistics.median(decode[1:] or decode):.0f} tokens/s")]

    # A turn as the agent sends it: the instructions and the greeting are cached from the previous request.
    history = [{"role": "system", "content": instructions}, {"role": "assistant", "content": GREETING}]

    def evaluate(messages: list[dict], max_tokens: int = 1) -> Iterator[str]:
        return model.stream(model.prompt_tokens(messages), max_tokens=max_tokens, temperature=0.0)

    opening = [*history, {"role": "user", "content": CALLER[3]}]
    for _ in range(2):  # the cache holds this prefix now
        list(evaluate(opening))
    turn = [*history, {"role": "user", "content": QUESTION}, {"role": "system", "content": facts_message(FACTS)}]
    tokens = model.prompt_tokens(turn)
    new = len(tokens) - model._llm.longest_token_prefix(model._llm._input_ids.tolist(), tokens)
    marks = {"first token": None, "first clause": CLAUSE_END, "first sentence": SENTENCE_END}
    timings = []
    for _ in range(repeats):
        timings.append(first_times(evaluate(turn, max_tokens=48), marks))
        list(evaluate(opening))  # back to the history alone cached, as before a call's next turn
    for name in marks:
        values = [t[name] for t in timings if name in t]
        if values:
            rows.append((f"LLM turn ({new} new tokens of {len(tokens)}): {name}",
                         f"{1000 * statistics.median(values):.0f} ms"))
    progress("LLM done")
    return rows


def tts_rows(repeats: int, voice: PiperVoice) -> list[tuple[str, str]]:
    tts = voice._tts
    rows = []
    for label, text in SPOKEN.items():
        ms = median_ms(lambda text=text: next(iter(tts.synthesize_at(text, 24000))), repeats)
        rows.append((f"TTS (Piper) first audio, {label}", f"{ms:.0f} ms"))
    progress("TTS done")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median reported)")
    parser.add_argument("--write", type=Path, help="replace this script's section in a markdown file")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    voice = PiperVoice()
    rows = stt_rows(args.repeats, voice) + turn_end_rows(args.repeats) + llm_rows(args.repeats) \
        + tts_rows(args.repeats, voice)
    table = ["| stage, alone | median |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    print("\n".join(table))
    if args.write:
        command = "python -m bench.stages " + shlex.join(argv if argv is not None else sys.argv[1:])
        method = (f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()} with "
                  f"{os.cpu_count()} CPU cores, each model alone (in-process, no HTTP, no call, nothing else "
                  f"running), median of {args.repeats} runs, {time.monotonic() - started:.0f} s: `{command.strip()}`.")
        section = "\n".join(["## Each stage alone (bench/stages.py)", "", method, "", *table])
        replace_section(args.write, "bench/stages.py", section, title="# Benchmarks")
        progress(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
