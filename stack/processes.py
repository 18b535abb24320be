"""Background processes the stack starts: spawn detached, remember by pid file, stop only our own."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

from .errors import StackError
from .files import atomic_write
from .logs import open_log, private_dir, rotate_if_over, start_line, start_writer


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    create_time: float
    argv: list[str]
    log_path: str
    log_writer: int | None = None  # the pid of its log writer (stack/logs.py)

    def process(self) -> psutil.Process | None:
        """The live process, or None if it exited (or the pid now belongs to someone else)."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.create_time) > 1 or process.status() == psutil.STATUS_ZOMBIE:
                return None
            return process
        except psutil.NoSuchProcess:
            return None


class ProcessTable:
    """Pid files under `<run_dir>/pids`, one per component."""

    def __init__(self, run_dir: Path):
        self.pid_dir = run_dir / "pids"

    def _path(self, name: str) -> Path:
        return self.pid_dir / f"{name}.json"

    def get(self, name: str) -> ProcessRecord | None:
        try:
            return ProcessRecord(**json.loads(self._path(name).read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def running(self, name: str) -> psutil.Process | None:
        record = self.get(name)
        return record.process() if record else None

    def start(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path,
              log_max_bytes: int = 20 << 20, log_backups: int = 3) -> ProcessRecord:
        """Starts `argv` with its output in `log_path` (mode 600, rotated past `log_max_bytes`: stack/logs.py)."""
        private_dir(self.pid_dir)
        rotate_if_over(log_path, log_max_bytes, log_backups)
        log = open_log(log_path)
        try:
            os.write(log, start_line(argv).encode())
        finally:
            os.close(log)
        output, writer = start_writer(log_path, log_max_bytes, log_backups)
        try:
            # A session of its own: `cli.py up` returns and the process lives on; `down` stops its whole group.
            popen = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, umask=0o077,  # what it creates (supervisord: the components' logs) is private
            )
        finally:
            os.close(output)
        record = ProcessRecord(name, popen.pid, psutil.Process(popen.pid).create_time(), argv, str(log_path), writer)
        atomic_write(self._path(name), json.dumps(record.__dict__))
        return record

    def stop(self, name: str, timeout: float = 10.0) -> bool:
        """Stops the component's process group if it is still ours; returns whether anything was running."""
        record = self.get(name)
        if record is None:
            return False
        process = record.process()
        if process is not None:
            _signal_group(record.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except psutil.TimeoutExpired:
                _signal_group(record.pid, signal.SIGKILL)
                process.wait(5)
            _wait_for_writer(record)
        self._path(name).unlink(missing_ok=True)
        return process is not None


def _wait_for_writer(record: ProcessRecord, timeout: float = 3.0) -> None:
    """Until the log writer has written the component's last words and gone (it ends at end of input)."""
    try:
        writer = psutil.Process(record.log_writer) if record.log_writer else None
        if writer is not None and str(record.log_path) in " ".join(writer.cmdline()):
            writer.wait(timeout)
    except (psutil.Error, OSError):
        pass


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def ensure_port_free(port: int, what: str, env_key: str, udp: bool = False, address: str = "127.0.0.1",
                     address_key: str = "") -> None:
    """One clear line naming who holds a port we need, and the setting that moves us elsewhere.

    The probe binds as our servers do: a TCP listener (uvicorn, redis, Go's net.Listen) sets SO_REUSEADDR, so
    connections left in TIME-WAIT by a server just stopped do not count, and a listener still does. UDP sockets
    (livekit-sip) bind without it, and so does the probe (on UDP it would let two sockets share the port)."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        if not udp:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
            return
        except OSError as error:
            if error.errno == errno.EADDRNOTAVAIL:
                raise StackError(f"{address} (needed by {what}) is not an address of this machine: set "
                                 f"{address_key or 'the address'} in .env to one of `ip -brief address`") from None
    holder = _port_holder(port, udp)
    raise StackError(
        f"{'UDP' if udp else 'TCP'} port {port} on {address} (needed by {what}) is taken{holder}; "
        f"stop that process or set {env_key} in .env to a free port"
    )


def _port_holder(port: int, udp: bool) -> str:
    try:
        for conn in psutil.net_connections(kind="udp" if udp else "tcp"):
            if conn.laddr and conn.laddr.port == port and conn.pid:
                return f" by {psutil.Process(conn.pid).name()} (pid {conn.pid})"
    except (psutil.Error, OSError):
        pass
    return ""


def log_tail(log_path: Path | str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(log_path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
