"""The spoken end-to-end evaluation: every scenario of tests/data/spoken_eval.toml as a real SIP call (PCMU only,
8 kHz, as a phone line carries it) through livekit-sip into the agent, once per caller voice, scored on what the
caller hears (the replies transcribed at the caller by the local Whisper).

    make eval                                            # its own stack, the bakery profile; writes docs/quality.md
    make eval EVAL_ARGS="--only hours-monday --voice piper"   # one quick call
    python -m bench.spoken_eval [--only NAME] [--voice piper|espeak] [--write docs/quality.md]   # a running stack

The exit status is non-zero only when the harness itself failed (a bad scenario file, a call that could not be
placed); low scores are results, not errors.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.report import replace_section
from stack.settings import Settings
from tools.softphone import CallOptions, CallResult, place_call_in_subprocess

REPO_ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = REPO_ROOT / "tests" / "data" / "spoken_eval.toml"


# ---------------------------------------------------------------------------------------------- scenarios

@dataclass(frozen=True)
class Line:
    """One caller utterance and what the agent's reply to it must (not) contain."""

    say: str
    expect_any: tuple[str, ...] = ()
    expect_none: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    lines: tuple[Line, ...]
    covers: str = ""
    expect_bye: bool = False
    expect_no_bye: bool = False
    expect_refer: bool = False
    no_refer: bool = False


@dataclass(frozen=True)
class ScenarioFile:
    profile: str
    transfer_number: str
    greeting_any: tuple[str, ...]
    scenarios: tuple[Scenario, ...]


class ScenarioError(Exception):
    """The scenario file is not what the harness expects; the message names the place."""


LINE_KEYS = {"say", "expect_any", "expect_none"}
CALL_KEYS = {"name", "covers", "line", "expect_bye", "expect_no_bye", "expect_refer", "no_refer"}
FILE_KEYS = {"profile", "transfer_number", "greeting_any", "call"}


def _strings(value, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ScenarioError(f"{where}: expected a list of non-empty strings")
    return tuple(value)


def _only_keys(table: dict, allowed: set[str], where: str) -> None:
    # A misspelt key (expect_non) would otherwise silently check nothing.
    if unknown := sorted(set(table) - allowed):
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def load_scenarios(path: Path = SCENARIOS) -> ScenarioFile:
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ScenarioError(f"{path}: {error}") from None
    _only_keys(data, FILE_KEYS, str(path))
    scenarios, names = [], set()
    for index, call in enumerate(data.get("call", [])):
        name = call.get("name") or f"call #{index + 1}"
        _only_keys(call, CALL_KEYS, name)
        if name in names:
            raise ScenarioError(f"{name}: the name is used twice")
        names.add(name)
        lines = []
        for number, line in enumerate(call.get("line", []), 1):
            where = f"{name}, line {number}"
            _only_keys(line, LINE_KEYS, where)
            if not isinstance(line.get("say"), str) or not line["say"].strip():
                raise ScenarioError(f"{where}: `say` must be the caller's words")
            lines.append(Line(say=line["say"], expect_any=_strings(line.get("expect_any", []), where),
                              expect_none=_strings(line.get("expect_none", []), where)))
        if not 1 <= len(lines) <= 3:
            raise ScenarioError(f"{name}: a call has one to three caller lines, not {len(lines)}")
        flags = {key: call.get(key, False) for key in ("expect_bye", "expect_no_bye", "expect_refer", "no_refer")}
        if not all(isinstance(value, bool) for value in flags.values()):
            raise ScenarioError(f"{name}: expect_bye, expect_no_bye, expect_refer and no_refer are true or false")
        if (flags["expect_bye"] and flags["expect_no_bye"]) or (flags["expect_refer"] and flags["no_refer"]):
            raise ScenarioError(f"{name}: contradictory expectations")
        scenarios.append(Scenario(name=name, lines=tuple(lines), covers=call.get("covers", ""), **flags))
    if not scenarios:
        raise ScenarioError(f"{path}: no [[call]] scenarios")
    return ScenarioFile(profile=data.get("profile", ""), transfer_number=data.get("transfer_number", ""),
                        greeting_any=_strings(data.get("greeting_any", []), "greeting_any"),
                        scenarios=tuple(scenarios))


# ---------------------------------------------------------------------------------------------- scoring

def _normalized(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(re.sub(r"[-\u2010-\u2014]", " ", text).split())


def mentions(text: str, keyword: str) -> bool:
    """Whether `keyword` starts a word of `text` (case-insensitive); a keyword ending in a digit must also end
    the number there, so "6" finds "6 PM" but not "16" or "60"."""
    word = _normalized(keyword)
    pattern = re.escape(word)
    if word[:1].isalnum():
        pattern = r"(?<![a-z0-9])" + pattern
    if word[-1:].isdigit():
        pattern += r"(?![0-9])"
    return re.search(pattern, _normalized(text)) is not None


@dataclass(frozen=True)
class Check:
    """One expectation, scored: what was expected, whether it held, and what was heard instead."""

    what: str
    met: bool
    heard: str = ""
    # The caller line whose reply was checked (0-based); None for what the call as a whole did.
    line: int | None = None


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


def score_call(scenario: Scenario, result: CallResult, *, transfer_number: str) -> list[Check]:
    """Every expectation of `scenario` against one placed call. A reply that never came fails all its checks."""
    checks = []
    for index, line in enumerate(scenario.lines):
        turn = result.turns[index] if index < len(result.turns) else None
        reply = turn.reply_text if turn is not None else None
        if reply is None:
            heard = "(the call had ended)" if turn is None else "(no reply)"
        else:
            heard = reply
        label = f"reply {index + 1}"
        if line.expect_any:
            met = reply is not None and any(mentions(reply, keyword) for keyword in line.expect_any)
            checks.append(Check(f"{label} mentions one of {list(line.expect_any)}", met, heard, index))
        if line.expect_none:
            found = [keyword for keyword in line.expect_none if reply is not None and mentions(reply, keyword)]
            checks.append(Check(f"{label} mentions none of {list(line.expect_none)}",
                                reply is not None and not found,
                                heard + (f"  [found: {', '.join(found)}]" if found else ""), index))
    hangup = {"agent": "the agent hung up", "caller": "the caller hung up", None: "the call never connected"}
    call_state = hangup.get(result.hangup_by, str(result.hangup_by))
    all_spoken = len(result.turns) == len(scenario.lines) and result.turns[-1].speech_end_ms is not None
    if scenario.expect_bye:
        checks.append(Check("the agent hangs up after the last line", result.hangup_by == "agent" and all_spoken,
                            call_state if all_spoken else f"{call_state} before the last line was spoken"))
    if scenario.expect_no_bye:
        checks.append(Check("the agent does not hang up", result.hangup_by != "agent" and result.ok, call_state))
    refer = f"REFER to {result.refer_to}" if result.refer_to else "no REFER"
    if scenario.expect_refer:
        met = bool(result.refer_to) and _digits(transfer_number) in _digits(result.refer_to or "")
        checks.append(Check(f"a REFER to {transfer_number}", met, refer))
    if scenario.no_refer:
        checks.append(Check("no REFER", result.ok and not result.refer_to, refer))
    return checks


# ---------------------------------------------------------------------------------------------- caller voices

@dataclass(frozen=True)
class EspeakVoice:
    """espeak-ng (Debian's binary): a formant voice nothing like the agent's own Piper voice."""

    voice: str = "en-us+f3"
    words_per_minute: int = 155
    name: str = "espeak"

    @property
    def description(self) -> str:
        return f"espeak-ng {self.voice}, {self.words_per_minute} wpm"

    def write(self, text: str, path: Path) -> None:
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise RuntimeError("espeak-ng is not installed: apt-get install -y espeak-ng (make eval does this)")
        subprocess.run([binary, "-v", self.voice, "-s", str(self.words_per_minute), "-w", str(path), text],
                       check=True, capture_output=True)


@dataclass
class PiperVoice:
    """The local Piper voice, the same one `cli.py call --say` uses; loaded once, not once per call."""

    name: str = "piper"
    description: str = "Piper en_US-joe-medium"
    _tts: object = field(default=None, repr=False)

    def write(self, text: str, path: Path) -> None:
        from tools.softphone import synthesize, write_wav

        if self._tts is None:
            from local_openai.tts import TextToSpeech

            self._tts = TextToSpeech()
        write_wav(path, synthesize(text, self._tts))


VOICES = {"piper": PiperVoice, "espeak": EspeakVoice}


# ---------------------------------------------------------------------------------------------- calls

@dataclass(frozen=True)
class CallSettings:
    server: str
    number: str
    # Bound on the answer, the greeting and each reply (the first call also waits for the models to warm up).
    timeout: float = 60.0
    # Silence that ends a reply: a slow CPU pauses between sentences, and a shorter bound talks over the second.
    reply_silence: float = 2.0
    # How long the caller stays on the line after the last reply, by what the call is to show.
    wait_for_bye_s: float = 15.0
    wait_for_refer_s: float = 15.0
    wait_for_no_bye_s: float = 8.0
    wait_otherwise_s: float = 2.0


def replies_prompt(settings: Settings) -> str:
    """The business's own words, to prime the caller's transcription of the replies as the agent's STT is primed:
    without them Whisper tiny.en heard Piper say "Burch Lane" and "sardol" for the right "Birch Lane" and
    "sourdough" (2026-12-06 16:16 run), so right answers failed on the harness's ears, not the agent's."""
    from agent.business import BusinessProfile
    from agent.knowledge import business_entries, vocabulary_of
    from agent.vocabulary import transcription_prompt

    name = BusinessProfile.load(settings).business_name
    entries = business_entries(config_file=settings.business_config or "", facts=settings.business_facts,
                               business_name=name)
    return transcription_prompt(business_name=name, terms=vocabulary_of(entries))


def stay_on_line(scenario: Scenario, settings: CallSettings) -> float:
    if scenario.expect_bye:
        return settings.wait_for_bye_s
    if scenario.expect_refer:
        return settings.wait_for_refer_s
    if scenario.expect_no_bye:
        return settings.wait_for_no_bye_s
    return settings.wait_otherwise_s


def place(*, audio: list[Path], settings: CallSettings, caller_id: str, record: Path, hangup_after: float,
          stt, prompt: str | None = None) -> CallResult:
    options = CallOptions(server=settings.server, number=settings.number, caller_id=caller_id,
                          play=[str(path) for path in audio], codecs=["pcmu"], transcribe=False,
                          record=str(record), timeout=settings.timeout, reply_silence=settings.reply_silence,
                          hangup_after=hangup_after)
    bound = settings.timeout * (len(audio) + 3) + hangup_after + 120
    result = place_call_in_subprocess(options, timeout=bound)
    if result.recording:
        from tools.softphone import transcribe_result

        transcribe_result(result, stt, prompt=prompt)  # here, with one model, not a model load in every child
    return result


@dataclass
class Outcome:
    voice: str
    scenario: Scenario
    result: CallResult
    checks: list[Check]
    greeting_ok: bool

    @property
    def passed(self) -> bool:
        return self.result.ok and all(check.met for check in self.checks)


# ---------------------------------------------------------------------------------------------- report

def _percentile(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.0f}" if values else "-"


# The agent's words when the line garbled a turn (agent/turn_policy.py's PARDON and STILL_UNCLEAR), as heard.
ASKED_AGAIN = ("catch that", "say it again", "make that out")


def summary_table(outcomes: list[Outcome], voices: list[str]) -> list[str]:
    rows = ["| voice | expectations met | calls fully passed | voice-to-voice p50 (ms) | voice-to-voice p95 (ms) "
            "| greeting names the business | caller asked to repeat | harness errors |",
            "|---|---|---|---|---|---|---|---|"]
    groups = [(voice, [o for o in outcomes if o.voice == voice]) for voice in voices]
    if len(voices) > 1:
        groups.append(("all", outcomes))
    for name, group in groups:
        met = sum(check.met for o in group for check in o.checks)
        total = sum(len(o.checks) for o in group)
        share = f"{100 * met / total:.0f}%" if total else "-"
        v2v = [t.voice_to_voice_ms for o in group for t in o.result.turns if t.voice_to_voice_ms is not None]
        passed = sum(o.passed for o in group)
        greeted = sum(o.greeting_ok for o in group)
        errors = sum(not o.result.ok for o in group)
        replies = [t.reply_text or "" for o in group for t in o.result.turns]
        repeats = sum(any(mentions(reply, words) for words in ASKED_AGAIN) for reply in replies)
        rows.append(f"| {name} | {met}/{total} ({share}) | {passed}/{len(group)} | {_percentile(v2v, 50)} "
                    f"| {_percentile(v2v, 95)} | {greeted}/{len(group)} | {repeats}/{len(replies)} | {errors} |")
    return rows


def failure_lines(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for o in outcomes:
        failed = [check for check in o.checks if not check.met]
        if o.result.error:
            lines.append(f"- [{o.voice}] {o.scenario.name}: harness error: {o.result.error}")
        for check in failed:
            if check.line is not None:
                said, heard = f'"{o.scenario.lines[check.line].say}"', f'"{check.heard}"'
            else:  # what the call did: the whole conversation explains it
                said = " / ".join(f'"{line.say}"' for line in o.scenario.lines)
                replies = " / ".join(f'"{turn.reply_text or ""}"' for turn in o.result.turns)
                heard = f"{check.heard}; agent: {replies or '(nothing)'}"
            lines.append(f"- [{o.voice}] {o.scenario.name}: {check.what}; caller: {said}; heard: {heard}")
    return lines


def model_description(settings: Settings) -> str:
    """The LLM the agent talks to, as the settings choose it."""
    if settings.ai_provider == "openai":
        return f"OpenAI {settings.openai_llm_model}"
    if settings.ai_provider == "openai-compatible":
        return f"{settings.openai_llm_model} at {settings.openai_base_url}"
    return f"local {settings.local_llm_model} (LOCAL_LLM_MODEL)"


def command_line(argv: list[str]) -> str:
    """The command, as Markdown."""
    command = f'`{shlex.join(["python", "-m", "bench.spoken_eval", *argv]).replace(f"{REPO_ROOT}/", "")}`'
    # MAKELEVEL is make's own variable (set in every command make runs), not a setting of ours.
    return command + (" (run by `make eval`)" if os.environ.get("MAKELEVEL") else "")


# ---------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", type=Path, default=SCENARIOS)
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this scenario (repeatable)")
    parser.add_argument("--voice", choices=sorted(VOICES), action="append", help="only this caller voice")
    parser.add_argument("--server", help="SIP server host:port (default 127.0.0.1:$SIP_PORT)")
    parser.add_argument("--number", help="number to dial (default: first of SIP_NUMBERS)")
    parser.add_argument("--timeout", type=float, default=CallSettings.timeout)
    parser.add_argument("--write", type=Path, help="write the results into this Markdown file (its own section)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    from tools.softphone.command import dial_defaults

    try:
        plan = load_scenarios(args.scenarios)
    except ScenarioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    scenarios = [s for s in plan.scenarios if not args.only or s.name in args.only]
    if missing := sorted(set(args.only or []) - {s.name for s in scenarios}):
        print(f"error: no scenario named {', '.join(missing)}", file=sys.stderr)
        return 2
    voices = [VOICES[name]() for name in (args.voice or ["piper", "espeak"])]

    agent_settings = Settings.load()  # what the stack passes on to the agent
    config = agent_settings.business_config
    if not config or config.resolve() != (REPO_ROOT / plan.profile).resolve():
        print(f"warning: BUSINESS_CONFIG is {config or 'unset'}, the scenarios expect {plan.profile}; the greetings "
              "below show what the agent really runs", file=sys.stderr)
    server, number = dial_defaults()
    settings = CallSettings(server=args.server or server, number=args.number or number, timeout=args.timeout)
    model = model_description(agent_settings)
    print(f"{len(scenarios)} scenarios x {len(voices)} voices, PCMU, dialing sip:{settings.number}@{settings.server}; "
          f"model: {model}", file=sys.stderr, flush=True)

    folder = Path(tempfile.mkdtemp(prefix="spoken-eval-"))
    audio: dict[tuple[str, str], Path] = {}
    for voice in voices:
        print(f"synthesizing {len(scenarios)} scenarios' lines with {voice.description} ...", file=sys.stderr,
              flush=True)
        for line in {line.say for s in scenarios for line in s.lines}:
            path = folder / f"{voice.name}-{len(audio)}.wav"
            voice.write(line, path)
            audio[(voice.name, line)] = path

    from local_openai.stt import SpeechToText

    stt = SpeechToText()
    prompt = replies_prompt(agent_settings)
    # One call first that counts for nothing: the agent's models warm up on it, not on the first scenario.
    warmup = place(audio=[], settings=settings, caller_id="+15550300", record=folder / "warmup.wav",
                   hangup_after=1, stt=stt, prompt=prompt)
    if not warmup.ok:
        print(f"error: the warm-up call failed: {warmup.error}", file=sys.stderr)
        return 1
    if plan.greeting_any and not any(mentions(warmup.greeting_text or "", w) for w in plan.greeting_any):
        print(f"warning: the greeting names none of {list(plan.greeting_any)}: {warmup.greeting_text!r}",
              file=sys.stderr)

    outcomes: list[Outcome] = []
    total, started = len(scenarios) * len(voices), time.monotonic()
    for voice in voices:
        for scenario in scenarios:
            count = len(outcomes) + 1
            result = place(audio=[audio[(voice.name, line.say)] for line in scenario.lines], settings=settings,
                           caller_id=f"+1555{count + 400:04d}", record=folder / f"{voice.name}-{scenario.name}.wav",
                           hangup_after=stay_on_line(scenario, settings), stt=stt, prompt=prompt)
            checks = score_call(scenario, result, transfer_number=plan.transfer_number)
            greeting_ok = any(mentions(result.greeting_text or "", word) for word in plan.greeting_any) \
                if plan.greeting_any else True
            outcome = Outcome(voice.name, scenario, result, checks, greeting_ok)
            outcomes.append(outcome)
            v2v = ", ".join(f"{t.voice_to_voice_ms:.0f}" for t in result.turns if t.voice_to_voice_ms is not None)
            print(f"[{count}/{total}] {voice.name:6} {scenario.name:36} {sum(c.met for c in checks)}/{len(checks)}"
                  f" {'pass' if outcome.passed else 'FAIL'}  v2v ms: {v2v or '-'}"
                  + (f"  error: {result.error}" if result.error else "")
                  + ("" if greeting_ok else f"  greeting: {result.greeting_text!r}"), file=sys.stderr, flush=True)
            time.sleep(1)  # the last call's job closes, or it counts against AGENT_MAX_CALLS

    table = summary_table(outcomes, [voice.name for voice in voices])
    failures = failure_lines(outcomes)
    print("\n".join(table))
    print(f"\n{len(failures)} failed expectation(s)" + (":" if failures else "."))
    print("\n".join(failures))
    print(f"\n{time.monotonic() - started:.0f} s for {total} calls", file=sys.stderr)

    if args.write:
        shown = args.scenarios.resolve()
        shown = shown.relative_to(REPO_ROOT) if shown.is_relative_to(REPO_ROOT) else shown
        section = "\n".join([
            "## Spoken evaluation (bench/spoken_eval.py)", "",
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()} with "
            f"{os.cpu_count()} CPU cores; model: {model}. {len(scenarios)} scenarios (`{shown}`) "
            f"against `{plan.profile}`, each a real SIP call through livekit-sip offering only PCMU (8 kHz), placed "
            f"once per caller voice ({'; '.join(v.description for v in voices)}). The replies are transcribed at the "
            "caller with the local Whisper tiny.en, primed with the business's words as the agent's STT is; "
            "voice-to-voice is the end of the caller's speech -> the first agent audio, at the caller.", "",
            f"Command: {command_line(argv)}", "",
            *table, "",
            f"<details><summary>Failed expectations ({len(failures)})</summary>", "",
            *(failures or ["None."]), "", "</details>"])
        replace_section(args.write, "bench/spoken_eval.py", section)
        print(f"wrote {args.write}", file=sys.stderr)
    shutil.rmtree(folder, ignore_errors=True)
    return 1 if any(not o.result.ok for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
