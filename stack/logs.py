"""The components' logs: private (mode 600, in a folder of mode 700) and rotated by size.

Each component writes to its stdout, a pipe to `python -m stack.logs --max-bytes N --backups K LOG`, which writes
LOG and rotates it (LOG.1 ... LOG.K, the oldest dropped) whenever LOG would pass N bytes. ProcessTable.start starts
every component that way (start_writer).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

START_MARKER = "\n--- "  # written before each start (start_line): "--- <time> starting: <argv>"


def start_line(argv: list[str]) -> str:
    """The line that marks a start in a component's log (ProcessTable.start, stack/launch.py); since_start reads
    from the last one."""
    return f"{START_MARKER}{time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n"


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def open_log(path: Path) -> int:
    """A file descriptor appending to `path`, which is (made) mode 600."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def rotate(path: Path, backups: int) -> None:
    """LOG -> LOG.1 -> LOG.2 ... up to LOG.<backups>; the oldest is dropped. With no backups LOG is emptied."""
    if backups <= 0:
        if path.exists():
            os.truncate(path, 0)
        return
    for index in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{index + 1}"))
    if path.exists():
        os.replace(path, path.with_name(f"{path.name}.1"))


def rotate_if_over(path: Path, max_bytes: int, backups: int) -> None:
    try:
        if path.stat().st_size >= max_bytes:
            rotate(path, backups)
    except FileNotFoundError:
        pass


def since_start(path: Path, backups: int = 9) -> str:
    """What the component logged since its last start marker, across rotated files."""
    text = ""
    for candidate in [path, *(path.with_name(f"{path.name}.{i}") for i in range(1, backups + 1))]:
        try:
            text = candidate.read_text(errors="replace") + text
        except FileNotFoundError:
            break
        if START_MARKER in text:
            return text[text.rfind(START_MARKER):]
    return text


def write_from(source: int, path: Path, max_bytes: int, backups: int) -> None:
    """Writes what arrives on the file descriptor `source` to `path` until the other end closes, rotating it so that
    no file passes `max_bytes` (a single longer line excepted); files begin and end at line boundaries."""
    fd = open_log(path)
    size = os.fstat(fd).st_size
    at_line_start = True
    while data := os.read(source, 65536):
        if not at_line_start:  # the line under way ends in the file where it began
            end = data.find(b"\n") + 1 or len(data)
            size += _write(fd, data[:end])
            at_line_start = data[end - 1:end] == b"\n"
            data = data[end:]
        while data:
            room = max_bytes - size
            cut = len(data) if len(data) <= room else data.rfind(b"\n", 0, max(room, 0)) + 1
            if cut == 0 and size == 0:  # one line longer than a whole file: it gets a file of its own
                cut = data.find(b"\n") + 1 or len(data)
            if cut:
                size += _write(fd, data[:cut])
                at_line_start = data[cut - 1:cut] == b"\n"
                data = data[cut:]
            if data:
                os.close(fd)
                rotate(path, backups)
                fd, size = open_log(path), 0
    os.close(fd)


def start_writer(path: Path, max_bytes: int, backups: int) -> tuple[int, int]:
    """A log writer for `path` (`python -m stack.logs`, in a session of its own): (the write end of its pipe, for
    the component's stdout and stderr; its pid). The writer ends when every holder of that end has closed it: when
    the component and its children have gone, after their last words."""
    read_end, write_end = os.pipe()
    try:
        writer = subprocess.Popen([sys.executable, "-m", "stack.logs", "--max-bytes", str(max_bytes), "--backups",
                                   str(backups), str(path)], stdin=read_end, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, cwd=Path(__file__).resolve().parent.parent,
                                  start_new_session=True)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return write_end, writer.pid


def _write(fd: int, data: bytes) -> int:
    try:
        return os.write(fd, data)
    except OSError:  # a full disk: keep draining, or the command would block on its output
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.logs", description=__doc__)
    parser.add_argument("--max-bytes", type=int, required=True)
    parser.add_argument("--backups", type=int, required=True)
    parser.add_argument("log", type=Path)
    args = parser.parse_args()
    # Signals meant for the component's group never reach us (a session of our own); we end at end of input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    write_from(sys.stdin.fileno(), args.log, args.max_bytes, args.backups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
