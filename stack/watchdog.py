"""The health checks supervisord lacks: `python -m stack.watchdog` runs under supervisord (stack/supervision.py)
and checks every running component each CHECK_INTERVAL_S.

- A component that was healthy (or has had its whole health_timeout to become so) and then fails
  FAILURES_BEFORE_RESTART checks in a row is hung: its process group gets SIGTERM (and SIGCONT, for a stopped one),
  then SIGKILL, and supervisord starts it again.
- A component started MAX_UNHEALTHY_STARTS times without once being healthy in between is stopped, with one line
  saying why for `cli.py status` (supervisord's own limit catches only exits within its first seconds).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .components import BY_NAME, Component, log_path
from .settings import Settings
from .supervision import Supervisor, last_error, stopped_note_path

CHECK_INTERVAL_S = 5.0
FAILURES_BEFORE_RESTART = 3
MAX_UNHEALTHY_STARTS = 5
TERM_WAIT_S = 5.0


@dataclass
class Watch:
    """What the watchdog knows of one component since it last saw it healthy."""
    start: int = 0  # supervisord's start time of the process it watches
    healthy_since_start: bool = False
    failures: int = 0
    unhealthy_starts: set[int] = field(default_factory=set)


def say(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", flush=True)


def restart_hung(pid: int) -> None:
    """Ends the process group of a component that stopped answering; supervisord then starts it again."""
    for sig in (signal.SIGTERM, signal.SIGCONT):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + TERM_WAIT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def check(settings: Settings, supervisor: Supervisor, pool: ThreadPoolExecutor, watches: dict[str, Watch]) -> None:
    infos = {info["name"]: info for info in supervisor.rpc.getAllProcessInfo() if info["name"] in BY_NAME}
    running = {name: info for name, info in infos.items() if info["statename"] == "RUNNING"}
    results = dict(zip(running, pool.map(lambda name: BY_NAME[name].healthy(settings), running)))
    for name, info in running.items():
        component: Component = BY_NAME[name]
        watch = watches.setdefault(name, Watch())
        if info["start"] != watch.start:
            watch.start, watch.healthy_since_start, watch.failures = info["start"], False, 0
            watch.unhealthy_starts.add(info["start"])
        if results[name]:
            watch.healthy_since_start, watch.failures = True, 0
            watch.unhealthy_starts.clear()
            continue
        if len(watch.unhealthy_starts) >= MAX_UNHEALTHY_STARTS:
            line = (f"{name}: stopped after {len(watch.unhealthy_starts)} starts without once passing its health "
                    f"check; last error: {last_error(settings, name)}; see {log_path(settings, name)}")
            stopped_note_path(settings, name).parent.mkdir(parents=True, exist_ok=True)
            stopped_note_path(settings, name).write_text(line + "\n")
            say(line)
            supervisor.stop(name)
            watches.pop(name)
            continue
        if not watch.healthy_since_start and info["now"] - info["start"] < component.health_timeout:
            continue  # still starting
        watch.failures += 1
        if watch.failures >= FAILURES_BEFORE_RESTART:
            say(f"{name}: failed {watch.failures} health checks in a row (pid {info['pid']}); restarting it")
            restart_hung(info["pid"])
            watch.failures = 0


def main() -> int:
    settings = Settings.load()
    supervisor = Supervisor(settings)
    watches: dict[str, Watch] = {}
    say(f"watching the components' health every {CHECK_INTERVAL_S:.0f} s")
    with ThreadPoolExecutor(max_workers=len(BY_NAME)) as pool:
        while True:
            try:
                check(settings, supervisor, pool, watches)
            except Exception as error:  # one bad round (supervisord busy, say) must not stop the watching
                say(f"health round failed: {error!r}")
            time.sleep(CHECK_INTERVAL_S)


if __name__ == "__main__":
    sys.exit(main())
