"""Supervision of the stack's components (stack/supervision.py, stack/watchdog.py), on real processes: redis and the
playground, the two components that start in a second or two.

A component killed is started again; a hung one (SIGSTOP) fails its health checks and is restarted; one that
cannot start (a corrupt append-only file) is given up after a few tries, with one line in `cli.py status`; `down`
leaves nothing running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import psutil
import pytest

from stack import supervision, watchdog
from stack.components import BY_NAME, HEALTH_CHECK_TIMEOUT_S
from tests.support.stack import RunningStack, make_stack_dir

pytestmark = pytest.mark.stack
REDIS_AND_PAGE = ["--only", "redis", "--only", "playground", "--no-provision"]
# A hung component: FAILURES_BEFORE_RESTART checks (each up to HEALTH_CHECK_TIMEOUT_S) at CHECK_INTERVAL_S, then
# TERM_WAIT_S, a start.
HUNG_RESTART_BOUND_S = (watchdog.FAILURES_BEFORE_RESTART * (watchdog.CHECK_INTERVAL_S + HEALTH_CHECK_TIMEOUT_S)
                        + watchdog.TERM_WAIT_S + 45)  # the first check may come a whole interval late; a loaded start


@pytest.fixture
def own_stack(tmp_path):
    stack = make_stack_dir(tmp_path, 23600)
    yield stack
    stack.cli("down")


def report(stack: RunningStack) -> dict[str, dict]:
    return {item["name"]: item for item in json.loads(stack.cli("status", "--json").stdout)}


def wait_until_restarted(stack: RunningStack, name: str, old_pid: int, bound_s: float) -> float:
    """Seconds until `name` runs again with another pid and passes its health check; fails past `bound_s`."""
    settings, supervisor = stack.settings, supervision.Supervisor(stack.settings)
    started = time.monotonic()
    while time.monotonic() - started < bound_s:
        info = supervisor.info(name)
        if info and info["pid"] not in (0, old_pid) and BY_NAME[name].healthy(settings):
            return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"{name} was not up again within {bound_s:.0f} s: {supervisor.info(name)}")


def stack_processes(stack: RunningStack) -> list[psutil.Process]:
    """supervisord, its log writer and everything under supervisord."""
    supervisor = supervision.Supervisor(stack.settings)
    root = supervisor.process()
    assert root is not None
    writer = psutil.Process(supervisor.table.get(supervision.SUPERVISORD).log_writer)
    return [root, writer, *root.children(recursive=True)]


def test_a_killed_component_is_started_again(own_stack):
    started = own_stack.cli("up", *REDIS_AND_PAGE)
    assert started.returncode == 0, started.stderr
    before = report(own_stack)
    for name in ("redis", "playground"):
        os.kill(before[name]["pid"], signal.SIGKILL)
    for name in ("redis", "playground"):
        took = wait_until_restarted(own_stack, name, before[name]["pid"], bound_s=20)
        print(f"{name} up again {took:.1f} s after kill -9")
    after = report(own_stack)
    assert after["redis"]["up"] and after["playground"]["up"]
    assert "exited: redis (terminated by SIGKILL" in (own_stack.run_dir / "logs" / "supervisord.log").read_text()


def test_a_hung_component_is_restarted(own_stack):
    assert own_stack.cli("up", *REDIS_AND_PAGE).returncode == 0
    hung = report(own_stack)["playground"]["pid"]
    os.kill(hung, signal.SIGSTOP)
    try:
        took = wait_until_restarted(own_stack, "playground", hung, bound_s=HUNG_RESTART_BOUND_S)
        print(f"playground up again {took:.1f} s after SIGSTOP")
    finally:
        if psutil.pid_exists(hung):
            os.kill(hung, signal.SIGCONT)
    assert not psutil.pid_exists(hung) or psutil.Process(hung).status() == psutil.STATUS_ZOMBIE
    log = (own_stack.run_dir / "logs" / "watchdog.log").read_text()
    assert f"playground: failed {watchdog.FAILURES_BEFORE_RESTART} health checks in a row (pid {hung})" in log
    assert report(own_stack)["redis"]["up"]  # the others were left alone


def test_a_component_that_cannot_start_is_given_up_with_one_line(own_stack):
    assert own_stack.cli("up", "--only", "redis", "--no-provision").returncode == 0
    assert own_stack.cli("down").returncode == 0
    manifest = own_stack.run_dir / "redis" / "appendonlydir" / "appendonly.aof.manifest"
    assert manifest.exists()
    manifest.write_text("not a manifest\n")

    began = time.monotonic()
    result = own_stack.cli("up", "--only", "redis", "--no-provision")
    took = time.monotonic() - began
    print(f"`up` gave redis up after {took:.1f} s")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    tries = supervision.START_RETRIES + 1
    assert f"redis: stopped after {tries} failed starts" in result.stderr
    assert len(re.findall(r"starting: \S*redis-server", (own_stack.run_dir / "logs" / "redis.log").read_text())) \
        == 1 + tries  # the good start before, and the tries

    status = own_stack.cli("status")
    assert status.returncode == 1
    lines = [line for line in status.stdout.splitlines() if line.startswith("redis: ")]
    assert len(lines) == 1, status.stdout
    assert re.fullmatch(rf"redis: stopped after {tries} failed starts \(each ended within \d+ s\); "
                        r"last error: .*Invalid AOF manifest file format; see \S+/logs/redis\.log", lines[0]), lines[0]
    assert report(own_stack)["redis"]["state"] == "failed"


def test_down_stops_everything_and_supervisord(own_stack):
    assert own_stack.cli("up", *REDIS_AND_PAGE).returncode == 0
    processes = stack_processes(own_stack)
    assert len(processes) >= 5  # supervisord, its log writer, the watchdog, redis, the playground
    supervisord = processes[0]
    # Controlled over a Unix socket in the run folder, mode 700; no TCP port of its own.
    assert supervisord.net_connections(kind="inet") == []
    socket_file = own_stack.run_dir / "supervisor.sock"
    assert socket_file.is_socket() and (socket_file.stat().st_mode & 0o777) == 0o700

    began = time.monotonic()
    stopped = own_stack.cli("down")
    print(f"`down` took {time.monotonic() - began:.1f} s")
    assert stopped.returncode == 0
    assert "redis" in stopped.stdout and "playground" in stopped.stdout
    left = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], left
    assert not socket_file.exists()
    assert own_stack.cli("down").stdout.strip() == "Nothing was running."


@pytest.mark.unit
def test_the_systemd_unit_runs_up_and_down_and_is_valid(tmp_path):
    stack = make_stack_dir(tmp_path / "odd % \"name\"", 23600)
    result = stack.cli("systemd", "--output", str(tmp_path / "units"), "--user", "root")
    assert result.returncode == 0, result.stderr
    unit_file = tmp_path / "units" / "phone-assistant.service"
    text = unit_file.read_text()
    pid_file = str(stack.run_dir / "supervisord.pid").replace("%", "%%")
    assert "Type=forking" in text and f"PIDFile={pid_file}\n" in text
    assert re.search(r'^ExecStart=".*python[\d.]*" ".*/cli\.py" up$', text, re.M)
    assert re.search(r'^ExecStop=".*python[\d.]*" ".*/cli\.py" down$', text, re.M)
    assert '%% \\"name\\"' in text  # systemd's specifier and quote escaped in the Environment line
    verify = subprocess.run(["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True)
    problems = [line for line in verify.stderr.splitlines() if str(unit_file) in line]
    assert problems == [], verify.stderr
