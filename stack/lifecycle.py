"""Bringing the stack up and down, and reporting what runs: the one entry point `cli.py` and the tests use."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .binaries import say
from .components import ALL, Component, wanted_components
from .errors import StackError
from .processes import ProcessTable, ensure_port_free, log_tail
from .settings import REPO_ROOT, Settings


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    up: bool
    address: str
    version: str
    pid: int | None
    log_path: str
    # What faces other hosts ("SIP udp+tcp 203.0.113.10:5060"); empty: loopback only.
    exposed: list[str] = field(default_factory=list)


def log_path(settings: Settings, component: Component):
    return settings.log_dir / f"{component.name}.log"


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
    """Starts every wanted component that is not already running, in dependency order, each one healthy first."""
    with exclusive(settings, "up"):
        return _up(settings, names)


def _up(settings: Settings, names: list[str] | None) -> list[ComponentStatus]:
    table = ProcessTable(settings.run_dir)
    components = wanted_components(settings, names)
    for component in components:
        component.check(settings)
    install(settings, [c.name for c in components])
    for component in components:
        if table.running(component.name):
            if component.healthy(settings):
                say(f"{component.name}: already running")
                continue
            table.stop(component.name)  # ours, but not answering: start it afresh
        _start(settings, table, component)
    return status(settings, [c.name for c in components])


def _start(settings: Settings, table: ProcessTable, component: Component) -> None:
    for port, key in component.ports(settings).items():
        ensure_port_free(port, component.name, key)
    for port, key in component.udp_ports(settings).items():
        ensure_port_free(port, component.name, key, udp=True)
    for address, port, udp, address_key, port_key in component.other_ports(settings):
        ensure_port_free(port, component.name, port_key, udp=udp, address=address, address_key=address_key)
    env = settings.env_for_processes() | component.extra_env(settings)
    record = table.start(component.name, component.command(settings), env, log_path(settings, component), REPO_ROOT,
                         log_max_bytes=settings.log_max_mb << 20, log_backups=settings.log_backups)
    say(f"{component.name}: starting (pid {record.pid}), waiting up to {component.health_timeout:.0f} s for health")
    deadline = time.monotonic() + component.health_timeout
    last_note = time.monotonic()
    while time.monotonic() < deadline:
        if component.healthy(settings):
            say(f"{component.name}: healthy at {component.address(settings)}")
            return
        if record.process() is None:
            raise StackError(
                f"{component.name} exited during start-up; see {record.log_path}. Last lines:\n"
                + log_tail(record.log_path)
            )
        if time.monotonic() - last_note > 10:
            waited = time.monotonic() - deadline + component.health_timeout
            latest = log_tail(record.log_path, 1).strip()[:160]
            say(f"{component.name}: still starting ({waited:.0f} s): {latest}")
            last_note = time.monotonic()
        time.sleep(0.25)
    raise StackError(
        f"{component.name} did not become healthy within {component.health_timeout:.0f} s; see {record.log_path}. "
        "Last lines:\n" + log_tail(record.log_path)
    )


def down(settings: Settings, names: list[str] | None = None) -> list[str]:
    """Stops what `up` started (by our pid files), last started first; returns the names that were running."""
    with exclusive(settings, "down"):
        table = ProcessTable(settings.run_dir)
        chosen = [c for c in ALL if not names or c.name in names]
        stopped = []
        for component in reversed(chosen):
            if table.stop(component.name):
                stopped.append(component.name)
        return stopped


def status(settings: Settings, names: list[str] | None = None) -> list[ComponentStatus]:
    table = ProcessTable(settings.run_dir)
    report = []
    for component in wanted_components(settings, names):
        process = table.running(component.name)
        report.append(ComponentStatus(
            name=component.name,
            up=process is not None and component.healthy(settings),
            address=component.address(settings),
            version=component.version(settings),
            pid=process.pid if process else None,
            log_path=str(log_path(settings, component)),
            exposed=[exposure.describe() for exposure in component.exposed(settings)],
        ))
    return report
