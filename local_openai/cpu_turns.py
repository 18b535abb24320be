"""The endpoint's models take turns on the CPU: one computes at a time, with all its threads.

Each model runs with one thread per core, so two at once (two calls' transcriptions, an end-of-turn check beside an
LLM reply) put twice as many busy threads as cores, and their spinning thread pools slow each other down. A
generation (LLM tokens, TTS sentences) takes a turn per step, so a transcription never waits for a whole reply.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

CPU = threading.Lock()
_END = object()


def in_turns(steps: Iterator[T]) -> Iterator[T]:
    """`steps`, each computed in a turn of its own."""
    steps = iter(steps)
    try:
        while True:
            with CPU:
                step = next(steps, _END)
            if step is _END:
                return
            yield step
    finally:
        if close := getattr(steps, "close", None):
            close()  # a reply its client left: the model's generator cleans up now, not when collected
