"""Calls in child processes: pjsua2 allows one library instance per process, so each call runs in a process of its
own (`python -m tools.softphone OPTIONS_JSON`), which prints its CallResult as its last JSON line on stdout.
Tests and the benchmark place several calls at once this way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tools.softphone.call import place_call
from tools.softphone.results import CallOptions, CallResult, SoftphoneError

REPO_ROOT = Path(__file__).resolve().parents[2]
CRASHED = "the softphone process ended without a result"


def place_call_in_subprocess(options: CallOptions, timeout: float | None = None,
                             env: dict[str, str] | None = None, crash_retries: int = 1,
                             prefix: tuple[str, ...] = ()) -> CallResult:
    """Runs `place_call(options)` in a child process (pjsua2 allows one library per process); its result.

    A child that dies without a result (a native crash inside pjsua2: rare, but seen once in 12 benchmark calls
    on a loaded machine) is run again, up to `crash_retries` times, and says so on stderr. `prefix` runs the child
    through another command (`nsenter -t PID -n`: a caller in another network namespace).
    """
    for attempt in range(crash_retries + 1):
        proc = run_call_process(options, env, prefix)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return CallResult(error=f"the softphone process did not finish within {timeout} s: {err.strip()[-300:]}")
        result = result_from_process(out, err, proc.returncode)
        if not result.error or not result.error.startswith(CRASHED) or attempt == crash_retries:
            return result
        print(f"{result.error}; placing the call again", file=sys.stderr, flush=True)
    return result


def run_call_process(options: CallOptions, env: dict[str, str] | None = None,
                     prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    """Starts a child softphone; read its result with `result_from_process(*proc.communicate())`."""
    # faulthandler: a crash in the media thread still leaves a Python traceback on stderr.
    command = [*prefix, sys.executable, "-X", "faulthandler", "-m", "tools.softphone", options.to_json()]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO_ROOT, env={**os.environ, **(env or {})})


def result_from_process(out: str, err: str, returncode: int | None = None) -> CallResult:
    """A child's result: the last JSON line on its stdout that is a CallResult, or an error saying how it died."""
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            try:
                return CallResult.from_json(line)
            except (ValueError, TypeError):  # another JSON line on stdout (a library's log): not our result
                continue
    lines = [line for line in err.strip().splitlines() if line.strip()]
    how = f" (exit status {returncode})" if returncode is not None else ""
    # faulthandler's report: the fatal error and the innermost Python frame say where it died.
    fatal = [line.strip() for line in lines if line.startswith("Fatal Python error")]
    frames = [line.strip() for line in lines if line.strip().startswith("File ")]
    detail = "; ".join(fatal[:1] + frames[:1]) or (lines[-1] if lines else "")
    return CallResult(error=f"{CRASHED}{how}" + (f"; {detail}" if detail else ""))


def child_main(argv: list[str]) -> int:
    """The child process: one call with the options in argv[0] (JSON); its result as one JSON line on stdout."""
    options = CallOptions.from_json(argv[0])
    try:
        result = place_call(options, progress=lambda m: print(m, file=sys.stderr, flush=True))
    except SoftphoneError as error:
        result = CallResult(error=str(error))
    print(result.to_json(), flush=True)
    sys.stderr.flush()
    # Skip interpreter teardown: it would run the destructors of pjsua2 objects still referenced after libDestroy().
    os._exit(0 if result.ok else 1)
