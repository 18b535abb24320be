"""Keeps one child process running: restarts it when it exits, with backoff; stops it on SIGTERM.

Usage: python -m stack.supervise NAME -- COMMAND ...
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 60.0  # a child that ran this long resets the backoff


def supervise(name: str, command: list[str]) -> int:
    child: subprocess.Popen | None = None
    stopping = False

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True
        if child and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    backoff = 1.0
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen(command)
        code = child.wait()
        if stopping:
            break
        ran = time.monotonic() - started
        backoff = 1.0 if ran > STABLE_AFTER_S else min(backoff * 2, MAX_BACKOFF_S)
        print(f"[supervise] {name} exited with code {code} after {ran:.0f} s; restarting in {backoff:.0f} s",
              file=sys.stderr, flush=True)
        time.sleep(backoff)
    if child and child.poll() is None:
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    sys.exit(supervise(sys.argv[1], sys.argv[3:]))
