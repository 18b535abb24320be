"""The caller turns the turn policy leaves to the LLM (no intent with a fixed reply, no knowledge-base answer), in
text mode through the real agent and the local endpoint: how many there are in the labelled set, and how many of the
LLM's replies are plainly wrong for a receptionist (a refusal, "you don't know", the caller's words echoed, the
instructions read out, nothing).

    python -m bench.open_turns_eval
    python -m bench.open_turns_eval --model qwen2.5-coder-1.5b
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import re
import sys

from bench.facts_eval import BAKERY, DATA, agent_reply, start_endpoint

BAD_REPLY = re.compile(
    r"^(you|caller|receptionist)\s*:|can(no|')t assist|unable to assist|can(no|')t help with that|not able to assist"
    r"|can(no|')t (do|fulfill) that|you don.t know|^(i.m sorry, but )?i don.t know\.?$|don.t know what you"
    r"|never invent|language:", re.I)


def plainly_wrong(said: str, reply: str) -> bool:
    def words(text: str) -> str:
        return re.sub(r"[^a-z ]", "", text.lower()).strip()
    return not reply.strip() or bool(BAD_REPLY.search(reply.strip())) or words(reply) == words(said)


async def ask_all(base_url: str) -> list[tuple[str, str, bool]]:
    from agent.turn_policy import Answer, Turn, TurnPolicy

    policy = TurnPolicy.load(BAKERY)
    with (DATA / "caller_intents.csv").open(newline="") as handle:
        utterances = [row["utterance"] for row in csv.DictReader(handle)]
    open_turns = [u for u in utterances
                  if isinstance(decision := policy.decide([Turn("user", u)]), Answer) and not decision.facts]
    print(f"{len(open_turns)} of {len(utterances)} labelled utterances go to the LLM", flush=True)
    results = []
    for said in open_turns:
        reply, _ = await agent_reply(base_url, policy, said)
        results.append((said, reply, plainly_wrong(said, reply)))
        print(f"  {'BAD' if results[-1][2] else 'ok '} {said!r} -> {reply!r}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--port", type=int, default=21907)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # huggingface_hub reads it: never fetch model weights
    print(f"{args.model}: starting an endpoint on port {args.port} ...", flush=True)
    endpoint = start_endpoint(args.model, args.port)
    try:
        results = asyncio.run(ask_all(f"http://127.0.0.1:{args.port}/v1"))
    finally:
        endpoint.terminate()
        endpoint.wait(30)
    wrong = sum(bad for _, _, bad in results)
    print(f"{args.model}: {len(results)} turns went to the LLM; {wrong} replies plainly wrong "
          f"({wrong / max(len(results), 1):.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
