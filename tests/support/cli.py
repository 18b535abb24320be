"""`python cli.py call ...` run as a user runs it: a child process, its exit status and its stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli_call(*args: str, timeout: float = 30, hide_modules: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`python cli.py call --no-transcribe ARGS`; the modules in `hide_modules` fail to import in it, as if they
    were not installed."""
    command = [sys.executable, str(REPO / "cli.py")]
    if hide_modules:
        hide = "".join(f"sys.modules[{name!r}] = None; " for name in hide_modules)
        command = [sys.executable, "-c", f"import runpy, sys; {hide}sys.argv[0] = 'cli.py'; "
                                         "runpy.run_path('cli.py', run_name='__main__')"]
    return subprocess.run([*command, "call", "--no-transcribe", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
