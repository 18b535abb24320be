"""Bringing the stack up and down, and reporting what runs: the one entry point `cli.py` and the tests use."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import supervision
from .binaries import say
from .components import ALL, Component, log_path, wanted_components
from .errors import StackError
from .processes import ProcessTable, ensure_port_free, log_tail
from .settings import Settings
from .supervision import Supervisor


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    up: bool
    state: str  # lifecycle._state
    address: str
    version: str
    pid: int | None
    log_path: str
    problem: str  # one line when supervision gave up on it (supervision.problem)
    # What faces other hosts ("SIP udp+tcp 203.0.113.10:5060"); empty: loopback only.
    exposed: list[str] = field(default_factory=list)


def install(settings: Settings, names: list[str] | None = None) -> None:
    for component in wanted_components(settings, names):
        component.install(settings)


_held: dict[Path, int] = {}  # run folders whose lock this process holds, and how deeply


@contextmanager
def exclusive(settings: Settings, command: str) -> Iterator[None]:
    """One `up` or `down` at a time on a run folder: an flock on <run_dir>/stack.lock, held until the command
    ends (the kernel drops it if the process dies). Held already by this process: nothing more to do. Held by
    another: StackError, one line naming it."""
    run_dir = settings.run_dir
    if _held.get(run_dir):
        _held[run_dir] += 1
        try:
            yield
        finally:
            _held[run_dir] -= 1
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / "stack.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another command"
            raise StackError(f"{holder} is already running on {run_dir}; wait for it to finish (or stop it), "
                             "then run this again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"`cli.py {command}` (pid {os.getpid()})\n".encode(), 0)
        _held[run_dir] = 1
        try:
            yield
        finally:
            del _held[run_dir]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # and with it the lock


def up(settings: Settings, names: list[str] | None = None) -> list[ComponentStatus]:
    """Starts every wanted component that is not already running under the run folder's supervisord (started
    first if need be), in dependency order, each one healthy first."""
    with exclusive(settings, "up"):
        return _up(settings, names)


def _up(settings: Settings, names: list[str] | None) -> list[ComponentStatus]:
    components = wanted_components(settings, names)
    for component in components:
        component.check(settings)
    install(settings, [c.name for c in components])
    for name in _stop_unsupervised(settings):
        say(f"{name}: stopped the copy started without supervision")
    if not components:
        return []
    supervisor = Supervisor(settings)
    supervisor.ensure_running()
    for component in components:
        info = supervisor.info(component.name)
        if info and info["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
            if component.healthy(settings):
                say(f"{component.name}: already running")
                continue
            if info["statename"] != "BACKOFF" and info["now"] - info["start"] < component.health_timeout:
                _wait_until_healthy(settings, supervisor, component, info["start"] + component.health_timeout
                                    - info["now"])  # started (again) lately: give it the rest of its time
                continue
            supervisor.stop(component.name)  # ours, but not answering: start it afresh
        _start(settings, supervisor, component)
    return status(settings, [c.name for c in components])


def _stop_unsupervised(settings: Settings, names: list[str] | None = None) -> list[str]:
    """Stops the components (all, or those named) that an older version started on their own (a pid file each),
    last started first: supervisord runs them now. Returns those that were running."""
    table = ProcessTable(settings.run_dir)
    return [c.name for c in reversed(ALL) if (not names or c.name in names) and table.stop(c.name)]


def _start(settings: Settings, supervisor: Supervisor, component: Component) -> None:
    for port, key in component.ports(settings).items():
        ensure_port_free(port, component.name, key)
    for port, key in component.udp_ports(settings).items():
        ensure_port_free(port, component.name, key, udp=True)
    for address, port, udp, address_key, port_key in component.other_ports(settings):
        ensure_port_free(port, component.name, port_key, udp=udp, address=address, address_key=address_key)
    supervision.write_launch_spec(settings, component)
    supervision.stopped_note_path(settings, component.name).unlink(missing_ok=True)
    supervisor.start(component.name)
    _wait_until_healthy(settings, supervisor, component, component.health_timeout)


def _wait_until_healthy(settings: Settings, supervisor: Supervisor, component: Component, timeout: float) -> None:
    path = log_path(settings, component.name)
    say(f"{component.name}: starting under supervisord, waiting up to {timeout:.0f} s for health")
    deadline = time.monotonic() + timeout
    last_note = time.monotonic()
    while time.monotonic() < deadline:
        if component.healthy(settings):
            say(f"{component.name}: healthy at {component.address(settings)}")
            return
        info = supervisor.info(component.name)
        if info is None or info["statename"] in ("FATAL", "STOPPED", "EXITED"):
            line = supervision.problem(settings, component.name, info) or f"{component.name} stopped during start-up"
            raise StackError(f"{line}. Last lines:\n{log_tail(path)}")
        if time.monotonic() - last_note > 10:
            waited = time.monotonic() - deadline + timeout
            latest = log_tail(path, 1).strip()[:160]
            say(f"{component.name}: still starting ({waited:.0f} s, {info['statename'].lower()}): {latest}")
            last_note = time.monotonic()
        time.sleep(0.25)
    raise StackError(
        f"{component.name} did not become healthy within {timeout:.0f} s; see {path}. "
        "Last lines:\n" + log_tail(path)
    )


def down(settings: Settings, names: list[str] | None = None) -> list[str]:
    """Stops what `up` started: the named components, or everything and supervisord with it; returns the names
    that were running."""
    with exclusive(settings, "down"):
        supervisor = Supervisor(settings)
        stopped = []
        if names:
            for component in reversed([c for c in ALL if c.name in names]):
                if supervisor.process() is not None and supervisor.stop(component.name):
                    stopped.append(component.name)
        else:
            stopped = supervisor.shutdown()
        return stopped + _stop_unsupervised(settings, names)


def status(settings: Settings, names: list[str] | None = None) -> list[ComponentStatus]:
    infos = Supervisor(settings).infos()
    report = []
    for component in wanted_components(settings, names):
        info = infos.get(component.name)
        # STARTING: supervisord waits STARTUP_S before it calls a start good; healthy before that is up all the same.
        running = info is not None and info["statename"] in ("RUNNING", "STARTING")
        healthy = running and component.healthy(settings)
        report.append(ComponentStatus(
            name=component.name,
            up=healthy,
            state=_state(component, info, healthy),
            address=component.address(settings),
            version=component.version(settings),
            pid=info["pid"] if info and info["pid"] else None,
            log_path=str(log_path(settings, component.name)),
            problem=supervision.problem(settings, component.name, info),
            exposed=[exposure.describe() for exposure in component.exposed(settings)],
        ))
    return report


def _state(component: Component, info: dict | None, healthy: bool) -> str:
    """up, starting (not yet healthy, within its health_timeout), unhealthy (running, failing its health check),
    restarting (waiting to start again), failed (given up: `problem` says why) or down."""
    if info is None:
        return "down"
    if healthy:
        return "up"
    if info["statename"] == "RUNNING" and info["now"] - info["start"] < component.health_timeout:
        return "starting"
    return {"RUNNING": "unhealthy", "STARTING": "starting", "BACKOFF": "restarting",
            "STOPPING": "stopping", "FATAL": "failed"}.get(info["statename"], "down")
