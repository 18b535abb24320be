"""Bringing the stack up and down, and reporting what runs: the one entry point `cli.py` and the tests use."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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


def up(settings: Settings, names: list[str] | None = None) -> list[ComponentStatus]:
    """Starts every wanted component that is not already running, in dependency order, each one healthy first."""
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
