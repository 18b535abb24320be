"""Fact questions against the bakery test profile, in text mode through the real agent and the local endpoint:
does each reply state the right fact, or say it doesn't know (never a made-up price)?

    python bench/facts_eval.py                                   # both models, both answer modes
    python bench/facts_eval.py --models qwen2.5-coder-0.5b --modes verbatim
    python bench/facts_eval.py --write docs/quality.md

Answer modes: `verbatim` (shipped: a question gets the best-matching knowledge-base answer as written) and `llm`
(the matching entries go beside the question and the LLM phrases the answer). Each model runs in an endpoint of its
own, started here (LOCAL_LLM_MODEL), greedy decoding.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import re
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import replace_section  # noqa: E402
from stack.settings import Settings  # noqa: E402

DATA = ROOT / "tests" / "data"
QUESTIONS = DATA / "bakery_facts_eval.csv"
BAKERY = Settings.of(BUSINESS_CONFIG=str(DATA / "bakery.toml"))
DONT_KNOW = re.compile(r"\b(don't|do not|not sure|no information|not able|can't|cannot)\b", re.I)
PRICE = re.compile(r"\$\s?\d|\b\d+(\.\d+)?\s*(dollars|bucks|cents)\b", re.I)
ENDPOINT_KEY = "local-eval-" + secrets.token_urlsafe(24)  # the key of the endpoints this script starts


def fact_questions() -> list[tuple[str, list[str]]]:
    """(question, keywords of which a right answer names one; none: the knowledge base doesn't answer it)."""
    with QUESTIONS.open(newline="") as handle:
        return [(row["question"], [k for k in row["expect_any"].split("|") if k]) for row in csv.DictReader(handle)]


def reply_is_right(reply: str, expect_any: list[str]) -> bool:
    if expect_any:
        return any(keyword.lower() in reply.lower() for keyword in expect_any)
    return bool(DONT_KNOW.search(reply)) and not PRICE.search(reply)


async def agent_reply(base_url: str, policy, said: str) -> tuple[str, float]:
    """What the agent (PhoneAssistant with `policy`, in text mode, its LLM the endpoint at `base_url`) replies to
    `said` in a session of its own, and the seconds the reply took."""
    from livekit.agents import AgentSession, llm
    from livekit.plugins import openai

    from agent.assistant import PhoneAssistant
    from agent.providers import session_connect_options

    model = openai.LLM(model="gpt-4o-mini", base_url=base_url, api_key=ENDPOINT_KEY, temperature=0,
                       parallel_tool_calls=False)
    async with model, AgentSession(llm=model, conn_options=session_connect_options()) as session:
        await session.start(PhoneAssistant(policy.profile, policy))
        started = time.monotonic()
        result = await session.run(user_input=said)
        seconds = time.monotonic() - started
    reply = " ".join(e.item.text_content or "" for e in result.events
                     if isinstance(e.item, llm.ChatMessage) and e.item.role == "assistant")
    return reply, seconds


async def ask_all(base_url: str, verbatim: bool) -> list[tuple[str, str, bool, float]]:
    from agent.turn_policy import TurnPolicy

    policy = TurnPolicy.load(BAKERY, verbatim_answers=verbatim)
    results = []
    for question, expect_any in fact_questions():
        reply, seconds = await agent_reply(base_url, policy, question)
        results.append((question, reply, reply_is_right(reply, expect_any), seconds))
        print(f"  {'ok ' if results[-1][2] else 'BAD'} {seconds:5.2f} s  {question!r} -> {reply!r}", flush=True)
    return results


def start_endpoint(model: str, port: int) -> subprocess.Popen:
    with open(f"/tmp/facts-eval-endpoint-{port}.log", "wb") as log:
        env = Settings.load().env_for_processes() | {"LOCAL_LLM_MODEL": model, "LOCAL_OPENAI_API_KEY": ENDPOINT_KEY}
        process = subprocess.Popen([sys.executable, "-m", "local_openai", "--port", str(port)], cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.HTTPError:
            if process.poll() is not None:
                sys.exit(f"error: the endpoint for {model} exited; see /tmp/facts-eval-endpoint-{port}.log")
            time.sleep(1)
    sys.exit(f"error: the endpoint for {model} did not start in 900 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="qwen2.5-coder-0.5b,qwen2.5-coder-1.5b")
    parser.add_argument("--modes", default="verbatim,llm")
    parser.add_argument("--port", type=int, default=21906)
    parser.add_argument("--write", type=Path, help="replace this script's section in a markdown file")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # huggingface_hub reads it: never fetch model weights

    rows = []
    for model in args.models.split(","):
        print(f"{model}: starting an endpoint on port {args.port} ...", flush=True)
        endpoint = start_endpoint(model, args.port)
        try:
            for mode in args.modes.split(","):
                print(f"{model}, answers {mode}:", flush=True)
                results = asyncio.run(ask_all(f"http://127.0.0.1:{args.port}/v1", verbatim=(mode == "verbatim")))
                answerable = [r for r, (_, keys) in zip(results, fact_questions()) if keys]
                unknown = [r for r, (_, keys) in zip(results, fact_questions()) if not keys]
                seconds = sorted(r[3] for r in results)
                rows.append(f"| {model} | {mode} | {sum(r[2] for r in results)}/{len(results)} "
                            f"({sum(r[2] for r in results) / len(results):.0%}) | "
                            f"{sum(r[2] for r in answerable)}/{len(answerable)} | "
                            f"{sum(r[2] for r in unknown)}/{len(unknown)} | "
                            f"{seconds[len(seconds) // 2]:.2f} |")
                print(rows[-1], flush=True)
        finally:
            endpoint.terminate()
            endpoint.wait(30)
    table = "\n".join(["| LLM | answers | right | answerable: fact stated | unanswerable: \"don't know\", no price | "
                       "median s per turn (text mode) |", "|---|---|---|---|---|---|", *rows])
    print(table)
    if args.write:
        write_section(args.write, table, " ".join(sys.argv[1:]))
    return 0


def write_section(path: Path, table: str, arguments: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"## Fact questions (bench/facts_eval.py)\n\nMeasured {stamp} on this 2-core machine: "
               f"{len(fact_questions())} caller questions about the bakery test profile "
               "(`tests/data/bakery_facts_eval.csv`, "
               "phrased unlike the knowledge base's own variants; 16 of them are not answered by it), each in a new "
               "text-mode session through the real agent and the local endpoint, greedy decoding. Right = the reply "
               "names one of the expected keywords, or, for an unanswerable one, says it doesn't know and names no "
               "price. "
               f"Rerun: `.venv/bin/python bench/facts_eval.py {arguments}`.\n\n{table}")
    replace_section(path, "bench/facts_eval.py", section)


if __name__ == "__main__":
    sys.exit(main())
