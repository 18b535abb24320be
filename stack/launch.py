"""Starts one component as supervisord's child: `python -m stack.launch SPEC` reads the command and environment that
`cli.py up` wrote to SPEC (a JSON file of mode 600: the environment holds the API secret, which must stay off
command lines and out of supervisord's config), marks the start in the log, and becomes the component (exec), so
that supervisord watches, signals and restarts the component itself.
"""

from __future__ import annotations

import json
import os
import sys

from .logs import start_line


def main() -> int:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as file:
        spec = json.load(file)
    argv, env = spec["argv"], spec["env"]
    # The start marker: logs.since_start reads a component's log from here (the agent's health does).
    print(start_line(argv), end="", flush=True)
    try:
        os.execve(argv[0], argv, env)
    except OSError as error:
        print(f"cannot start {argv[0]}: {error}", flush=True)
        return 127


if __name__ == "__main__":
    sys.exit(main())
