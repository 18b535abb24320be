"""The endpoint's models take turns on the CPU (local_openai/cpu_turns.py): a streaming generation lets a waiting
model in between two of its steps."""

from __future__ import annotations

import threading
import time

import pytest

from local_openai.cpu_turns import CPU, in_turns

pytestmark = pytest.mark.unit


def test_a_transcription_waits_one_step_of_a_streaming_reply_not_all_of_it():
    steps_done, got_in_after = [], []

    def reply():
        for step in range(40):
            time.sleep(0.01)  # a token's computation, inside the turn
            steps_done.append(step)
            yield step

    def transcription():
        with CPU:
            got_in_after.append(len(steps_done))

    stream = in_turns(reply())
    next(stream)
    waiter = threading.Thread(target=transcription)
    waiter.start()
    time.sleep(0.005)
    assert list(stream) == list(range(1, 40))
    waiter.join(5)
    assert got_in_after and got_in_after[0] <= 3, got_in_after


def test_a_reply_left_halfway_frees_the_cpu_and_closes_its_generator():
    closed = []

    def reply():
        try:
            yield from range(10)
        finally:
            closed.append(True)

    stream = in_turns(reply())
    next(stream)
    stream.close()
    assert closed == [True]
    acquired = threading.Event()
    threading.Thread(target=lambda: (CPU.__enter__(), acquired.set(), CPU.__exit__())).start()
    assert acquired.wait(2)
