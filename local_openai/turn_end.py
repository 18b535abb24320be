"""Has the caller finished? The chat model's own probability that the caller's words end here.

LiveKit's text end-of-turn model works this way (the chance of <|im_end|> after the user's words, on text without
punctuation); this asks the local chat model the same, with no training of its own. The transcript's punctuation is
dropped first: Whisper puts a full stop or question mark after a caller cut off mid-sentence too ("What time do
you?"). bench/turn_eval.py measures it against livekit-agents' audio detector on tests/data/turn_pauses.csv.

It runs on a llama context of its own over the same GGUF (the weights are mapped once), so it never evicts the
conversation's cached prompt from the chat model's context, and it never waits behind a reply being generated.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time

import numpy as np

from .cpu_turns import CPU
from .model_store import resolve_llm

log = logging.getLogger("local_openai.turn_end")
# The words that may end a sentence: the model's chance of any of them next is the chance the caller has finished.
ENDINGS = (".", "?", "!", "<|im_end|>")
SYSTEM = "You are a receptionist answering the phone."
NOT_SPOKEN = re.compile(r"[^\w\s'-]")
MAX_WORDS = 60  # the end of a longer turn is what decides; its start only costs prefill
CONTEXT = 512


def spoken_words(text: str, max_words: int = MAX_WORDS) -> str:
    """`text` as heard, not as written: lower case, no punctuation, the last `max_words` words."""
    return " ".join(NOT_SPOKEN.sub(" ", text.lower()).split()[-max_words:])


class TurnEndModel:
    def __init__(self, model: str, threads: int | None = None):
        from llama_cpp import Llama

        started = time.monotonic()
        self.model_name = model
        source = resolve_llm(model)
        options = dict(n_ctx=CONTEXT, n_threads=threads or os.cpu_count() or 2, n_batch=CONTEXT, verbose=False)
        if isinstance(source, str):  # a Hugging Face repo id, for users with internet
            self._llm = Llama.from_pretrained(source, filename="*q4_k_m.gguf", **options)
        else:
            self._llm = Llama(model_path=str(source), **options)
        self._endings = sorted({self._llm.tokenize(word.encode(), add_bos=False, special=True)[0] for word in ENDINGS})
        self._lock = threading.Lock()  # one llama context
        log.info("end-of-turn scorer on %s loaded in %.1f s", model, time.monotonic() - started)

    def prompt(self, said: str, last_reply: str = "") -> list[int]:
        """The caller's words after our last reply, left open: ChatML as Qwen was trained on it."""
        text = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
        if last_reply.strip():
            text += f"<|im_start|>assistant\n{' '.join(last_reply.split()[-MAX_WORDS:])}<|im_end|>\n"
        text += f"<|im_start|>user\n{spoken_words(said)}"
        return self._llm.tokenize(text.encode(), add_bos=False, special=True)

    def probability(self, said: str, last_reply: str = "") -> float:
        """P(the caller has finished) after `said`, in [0, 1]. Nothing said: 0, and the prompt up to the caller's
        words is evaluated now, so that the turn's request evaluates only those words (the agent asks so as soon as
        its reply is spoken: measured in calls, the reply's 20-30 tokens cost 200-400 ms beside the other models)."""
        import llama_cpp

        tokens = self.prompt(said, last_reply)[-(CONTEXT - 1):]
        primed_only = not spoken_words(said)
        with self._lock:
            started = time.monotonic()
            llm = self._llm
            # Evaluate only what the last request did not: the system prompt and our reply stay cached.
            common = min(llm.longest_token_prefix(llm._input_ids.tolist(), tokens), len(tokens) - 1)
            llm.n_tokens = common
            with CPU:
                llm.eval(tokens[common:])
            log.info("turn_end%s: %d tokens (%d cached) in %.0f ms", " (primed)" if primed_only else "",
                     len(tokens), common, 1000 * (time.monotonic() - started))
            if primed_only:
                return 0.0
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
            logits = logits.astype(np.float64)
        logits -= logits.max()
        weights = np.exp(logits)
        return float(weights[self._endings].sum() / weights.sum())
