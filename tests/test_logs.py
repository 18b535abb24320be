"""The components' logs (stack/logs.py): mode 600 in a folder of mode 700, rotated by size, and nothing lost when
the component stops."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import psutil
import pytest

from stack.logs import since_start
from stack.processes import ProcessTable
from stack.settings import REPO_ROOT

pytestmark = pytest.mark.unit
CHATTY = "import sys\nfor i in range(2000): print(f'line {i:05d} ' + 'x' * 40, flush=True)\nprint('the end')"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_log_is_rotated_by_size_and_keeps_its_newest_lines(tmp_path):
    log = tmp_path / "logs" / "chatty.log"
    chatty = subprocess.Popen([sys.executable, "-c", CHATTY], stdout=subprocess.PIPE)
    result = subprocess.run([sys.executable, "-m", "stack.logs", "--max-bytes", "20000", "--backups", "2", str(log)],
                            stdin=chatty.stdout, cwd=REPO_ROOT, timeout=60)
    chatty.stdout.close()
    assert result.returncode == 0 and chatty.wait(10) == 0
    files = sorted(p.name for p in log.parent.iterdir())
    assert files == ["chatty.log", "chatty.log.1", "chatty.log.2"]  # 100 KB written, 3 x 20 KB kept
    for name in files:
        assert os.path.getsize(log.parent / name) <= 20000
        assert mode(log.parent / name) == 0o600
    assert mode(log.parent) == 0o700
    newest = log.read_text().splitlines()
    assert newest[-1] == "the end"
    older = (log.parent / "chatty.log.1").read_text().splitlines()
    assert older[-1] < newest[0]  # .1 holds the lines just before the current file's


def test_an_existing_world_readable_log_becomes_private(tmp_path):
    log = tmp_path / "logs" / "old.log"
    log.parent.mkdir()
    log.write_text("from an older version\n")
    os.chmod(log, 0o644)
    os.chmod(log.parent, 0o755)
    table = ProcessTable(tmp_path / "run")
    record = table.start("echo", [sys.executable, "-c", "print('hello')"], dict(os.environ), log, tmp_path)
    deadline = time.monotonic() + 20
    while record.process() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mode(log) == 0o600 and mode(log.parent) == 0o700
    assert "hello" in since_start(log) and "older version" not in since_start(log)
    assert mode(table.pid_dir / "echo.json") == 0o600


def test_stopping_a_component_keeps_its_last_words(tmp_path):
    """`down` signals the group: the component says goodbye, and the log writer writes it before it exits."""
    script = ("import signal, sys, time\n"
              "def bye(*_):\n    print('stopping cleanly', flush=True); sys.exit(0)\n"
              "signal.signal(signal.SIGTERM, bye)\nprint('ready', flush=True)\ntime.sleep(60)")
    log = tmp_path / "logs" / "polite.log"
    table = ProcessTable(tmp_path / "run")
    table.start("polite", [sys.executable, "-c", script], dict(os.environ), log, tmp_path)
    deadline = time.monotonic() + 20
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert table.stop("polite", timeout=10)
    assert "stopping cleanly" in log.read_text()


def test_rotation_keeps_the_start_marker_reachable(tmp_path):
    """A long-running component's health ("registered worker" since its start) survives its log's rotation."""
    log = tmp_path / "agent.log"
    (tmp_path / "agent.log.2").write_text("\n--- 2026-01-01 00:00:00 starting: agent\nold run\n")
    (tmp_path / "agent.log.1").write_text("more of the old run\n\n--- 2026-01-02 00:00:00 starting: agent\n"
                                           "registered worker\n")
    log.write_text("later lines\n")
    assert since_start(log) == "\n--- 2026-01-02 00:00:00 starting: agent\nregistered worker\nlater lines\n"


def test_the_log_writer_ends_with_the_component(tmp_path):
    log = tmp_path / "logs" / "brief.log"
    table = ProcessTable(tmp_path / "run")
    table.start("brief", [sys.executable, "-c", "print('done')"], dict(os.environ), log, tmp_path)

    def writers():
        return [p for p in psutil.process_iter(["cmdline"]) if str(log) in " ".join(p.info["cmdline"] or [])]
    deadline = time.monotonic() + 20
    while writers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writers() == [] and "done" in log.read_text()
