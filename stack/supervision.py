"""Every component runs under supervisord (PyPI `supervisor`): one per run folder, started by `cli.py up`, stopped
by `cli.py down`, controlled over a Unix socket inside the run folder (mode 700; no TCP port).

supervisord restarts a component that exits, with a growing delay (1, 2, 3 ... s) while it keeps failing to start,
and gives up after START_RETRIES + 1 starts that each ended within STARTUP_S (FATAL: a configuration error, say).
It has no health checks: stack/watchdog.py, one more program under it, restarts a component that stops answering
its health check. docs/deploy.md says why supervisord, and how to run the stack under systemd instead.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import xmlrpc.client
from pathlib import Path

import psutil
from supervisor.xmlrpc import Faults, SupervisorTransport

from .components import ALL, Component, log_path
from .errors import StackError
from .files import atomic_write
from .logs import private_dir
from .processes import ProcessTable, log_tail
from .settings import REPO_ROOT, Settings

SOCKET = "supervisor.sock"
SUPERVISORD = "supervisord"  # its pid file in <run_dir>/pids, and its own log
WATCHDOG = "watchdog"
START_RETRIES = 4  # after the first start: 5 starts in all
STARTUP_S = 5  # a start that ends sooner counts as failed
STOP_WAIT_S = 10  # SIGTERM, then this long, then SIGKILL to the component's process group
SOCKET_PATH_MAX = 107  # sun_path
NOTHING_LOGGED = "nothing logged"


def socket_path(settings: Settings) -> Path:
    return settings.run_dir / SOCKET


def _rpc(run_dir: Path):
    """supervisord's XML-RPC interface (a new connection each time: one that failed cannot be used again)."""
    transport = SupervisorTransport(None, None, serverurl=f"unix://{run_dir / SOCKET}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor


def running_programs(run_dir: Path) -> dict[str, psutil.Process]:
    """Each program supervisord runs now in this run folder (the components and the watchdog), by name."""
    try:
        programs = _rpc(run_dir).getAllProcessInfo()
    except (OSError, xmlrpc.client.Error):
        return {}
    running = {}
    for program in programs:
        try:
            if program["pid"]:
                running[program["name"]] = psutil.Process(program["pid"])
        except psutil.NoSuchProcess:
            pass
    return running


def pid_file_path(settings: Settings) -> Path:
    return settings.run_dir / "supervisord.pid"


def config_path(settings: Settings) -> Path:
    return settings.run_dir / "supervisord.conf"


def launch_spec_path(settings: Settings, name: str) -> Path:
    return settings.run_dir / "launch" / f"{name}.json"


def _ini(value: object) -> str:
    return str(value).replace("%", "%%")  # supervisord expands %(name)s in its config values


def _program(settings: Settings, name: str, command: list[str], priority: int, **options: object) -> str:
    lines = [
        f"[program:{name}]",
        f"command={_ini(' '.join(command))}",
        f"directory={_ini(REPO_ROOT)}",
        f"priority={priority}",  # started in this order, stopped in the reverse
        "autorestart=true",
        f"startsecs={STARTUP_S}",
        f"startretries={START_RETRIES}",
        "stopsignal=TERM",
        f"stopwaitsecs={STOP_WAIT_S}",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=true",
        f"stdout_logfile={_ini(log_path(settings, name))}",
        f"stdout_logfile_maxbytes={settings.log_max_mb}MB",
        f"stdout_logfile_backups={settings.log_backups}",
    ]
    lines += [f"{key}={_ini(value)}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


def write_config(settings: Settings) -> None:
    """supervisord's config: a program for each component (started by `up`, not by supervisord) and the watchdog.
    The programs' commands name only their launch spec, so the config changes only with the run folder."""
    if len(str(socket_path(settings))) > SOCKET_PATH_MAX:
        raise StackError(f"the run folder {settings.run_dir} is too long a path for supervisord's control socket "
                         f"({SOCKET_PATH_MAX} characters at most): set PHONE_RUN_DIR to a shorter one")
    sections = [
        "[supervisord]",
        "nodaemon=true",  # detached already: ProcessTable starts it in a session of its own, output to its log
        "logfile=/dev/null",
        "logfile_maxbytes=0",
        f"pidfile={_ini(pid_file_path(settings))}",
        f"childlogdir={_ini(settings.log_dir)}",
        "",
        "[unix_http_server]",
        f"file={_ini(socket_path(settings))}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
    ]
    config = "\n".join(sections) + "\n"
    for priority, component in enumerate(ALL, start=1):
        launch = [sys.executable, "-m", "stack.launch", str(launch_spec_path(settings, component.name))]
        config += "\n" + _program(settings, component.name, launch, priority * 10, autostart="false")
    config += "\n" + _program(settings, WATCHDOG, [sys.executable, "-m", "stack.watchdog"], 999, autostart="true")
    atomic_write(config_path(settings), config)


def write_launch_spec(settings: Settings, component: Component) -> None:
    """What the component's next start runs, with which environment (read by stack/launch.py at every start)."""
    private_dir(launch_spec_path(settings, component.name).parent)
    spec = {"argv": component.command(settings), "env": settings.env_for_processes() | component.extra_env(settings)}
    atomic_write(launch_spec_path(settings, component.name), json.dumps(spec))


class Supervisor:
    """The run folder's supervisord, over its control socket."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.table = ProcessTable(settings.run_dir)

    @property
    def rpc(self):
        return _rpc(self.settings.run_dir)

    def process(self) -> psutil.Process | None:
        return self.table.running(SUPERVISORD)

    def ensure_running(self) -> None:
        """Starts supervisord for this run folder unless it runs; waits until it answers on its socket. (A running
        one keeps the config it read: a changed LOG_MAX_MB applies after `down`.)"""
        write_config(self.settings)
        for log in private_dir(self.settings.log_dir).iterdir():  # supervisord appends to a log as it finds it
            if log.is_file():
                os.chmod(log, 0o600)
        if self.process() is None:
            socket_path(self.settings).unlink(missing_ok=True)
            record = self.table.start(
                SUPERVISORD, [sys.executable, "-m", "supervisor.supervisord", "-c", str(config_path(self.settings))],
                self.settings.env_for_processes(), log_path(self.settings, SUPERVISORD), REPO_ROOT,
                log_max_bytes=self.settings.log_max_mb << 20, log_backups=self.settings.log_backups)
            deadline = time.monotonic() + 20
            while not self._answers():
                if record.process() is None or time.monotonic() > deadline:
                    raise StackError(f"supervisord did not start; see {record.log_path}. Last lines:\n"
                                     + log_tail(record.log_path))
                time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            return self.rpc.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def info(self, name: str) -> dict | None:
        """supervisord's view of one program (statename, pid, start, spawnerr ...), or None without supervisord."""
        if self.process() is None:
            return None
        try:
            return self.rpc.getProcessInfo(name)
        except (OSError, xmlrpc.client.Error):
            return None

    def infos(self) -> dict[str, dict]:
        """supervisord's view of every program, by name (one call for what `info` tells of one); empty without
        supervisord."""
        if self.process() is None:
            return {}
        try:
            return {info["name"]: info for info in self.rpc.getAllProcessInfo()}
        except (OSError, xmlrpc.client.Error):
            return {}

    def start(self, name: str) -> None:
        try:
            self.rpc.startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != Faults.ALREADY_STARTED:
                raise StackError(f"supervisord could not start {name}: {fault.faultString}") from None

    def stop(self, name: str) -> bool:
        """Stops one program (SIGTERM to its group, SIGKILL after STOP_WAIT_S); whether it was running."""
        try:
            self.rpc.stopProcess(name, True)
            return True
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == Faults.NOT_RUNNING:
                return False
            raise StackError(f"supervisord could not stop {name}: {fault.faultString}") from None

    def shutdown(self) -> list[str]:
        """Stops every component, the watchdog and supervisord itself; returns the components that were running.
        Any process group left behind (supervisord killed before it could stop one) is killed too."""
        supervisord = self.process()
        if supervisord is None:
            return []
        try:
            programs = self.rpc.getAllProcessInfo()
        except (OSError, xmlrpc.client.Error):
            programs = []
        active = [p for p in programs if p["statename"] in ("STARTING", "RUNNING", "BACKOFF", "STOPPING")]
        # supervisord stops its programs on SIGTERM, in reverse order, each within STOP_WAIT_S.
        self.table.stop(SUPERVISORD, timeout=STOP_WAIT_S * (len(programs) + 1))
        for program in active:
            _kill_group(program["pid"])
        socket_path(self.settings).unlink(missing_ok=True)
        return [p["name"] for p in active if p["name"] != WATCHDOG]


def _kill_group(pid: int) -> None:
    if not pid:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def last_error(settings: Settings, name: str) -> str:
    """The last line the component wrote (its complaint, when it failed), without the start markers."""
    for line in reversed(log_tail(log_path(settings, name), 30).splitlines()):
        line = line.strip()
        if line and not line.startswith("--- "):
            return line[:300]
    return NOTHING_LOGGED


def stopped_note_path(settings: Settings, name: str) -> Path:
    return settings.run_dir / "stopped" / f"{name}.txt"


def problem(settings: Settings, name: str, info: dict | None) -> str:
    """One line when supervision gave up on a component; empty otherwise."""
    if info is None:
        return ""
    log = log_path(settings, name)
    if info["statename"] == "FATAL":
        error = last_error(settings, name)  # its own complaint; supervisord's spawnerr only says "exited too quickly"
        if error == NOTHING_LOGGED:
            error = info.get("spawnerr") or error
        return (f"{name}: stopped after {START_RETRIES + 1} failed starts (each ended within {STARTUP_S} s); "
                f"last error: {error}; see {log}")
    if info["statename"] in ("STOPPED", "EXITED"):
        try:
            return stopped_note_path(settings, name).read_text().strip()
        except FileNotFoundError:
            return ""
    return ""
