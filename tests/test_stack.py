"""The stack's lifecycle through `cli.py`, on real redis, livekit-server and livekit-sip."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time

import psutil
import pytest

from stack.binaries import LIVEKIT_SERVER, installed_path
from tests.support.stack import make_stack_dir

pytestmark = pytest.mark.stack
SERVERS = ["--only", "redis", "--only", "livekit-server", "--only", "livekit-sip"]


@pytest.fixture
def own_stack(tmp_path):
    """A stack of this test's own (ports 23000+), stopped afterwards whatever happens."""
    stack = make_stack_dir(tmp_path, 23000, SIP_NUMBERS="+15550111")
    yield stack
    stack.cli("down")


def test_up_status_down(own_stack):
    started = own_stack.cli("up", *SERVERS)
    assert started.returncode == 0, started.stderr
    assert "sip setup" in started.stdout.lower() or "trunk" in started.stdout

    report = {item["name"]: item for item in json.loads(own_stack.cli("status", "--json").stdout)}
    for name, port in (("redis", 23000), ("livekit-server", 23001), ("livekit-sip", 23003)):
        item = report[name]
        assert item["up"], item
        assert str(port) in item["address"]
        assert psutil.pid_exists(item["pid"])
        assert os.path.exists(item["log_path"])
    assert report["livekit-server"]["version"] == "v1.13.5"
    pids = [report[name]["pid"] for name in ("redis", "livekit-server", "livekit-sip")]

    # redis and livekit-server listen on loopback only; so does livekit-sip's SIP port. (livekit-sip binds its
    # RTP sockets to 0.0.0.0 upstream; the namespace the tests run in has no address but ours.)
    for pid in pids[:2]:
        for conn in psutil.Process(pid).net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN or conn.type == socket.SOCK_DGRAM:
                assert conn.laddr.ip in ("127.0.0.1", "::1"), conn
    sip_sockets = [c for c in psutil.Process(pids[2]).net_connections(kind="inet") if c.laddr.port == 23003]
    assert sip_sockets and all(c.laddr.ip == "127.0.0.1" for c in sip_sockets)

    # A second `up` reuses what runs.
    again = own_stack.cli("up", *SERVERS, "--no-provision")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr

    stopped = own_stack.cli("down")
    assert stopped.returncode == 0
    assert "livekit-sip" in stopped.stdout and "redis" in stopped.stdout
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    after = own_stack.cli("status", "--json")
    assert after.returncode == 1
    assert not any(item["up"] for item in json.loads(after.stdout))


def test_trunk_and_rule_survive_a_restart_of_the_servers(own_stack):
    """Redis keeps its data on disk: after `down` and an `up` that provisions nothing, the number still has its
    trunk and rule."""
    assert own_stack.cli("up", *SERVERS).returncode == 0
    before = own_stack.cli("sip", "list").stdout
    assert "+15550111" in before
    assert own_stack.cli("down").returncode == 0
    restarted = own_stack.cli("up", *SERVERS, "--no-provision")
    assert restarted.returncode == 0, restarted.stderr
    status = own_stack.cli("sip", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "our trunk" in status.stdout and "+15550111" in status.stdout


def test_trunk_and_rule_survive_redis_killed_and_come_back_when_its_data_is_lost(own_stack):
    """redis killed (-9) is restarted by supervision with its append-only file: the trunk and rule are still there.
    Its data lost: the next `up` provisions them again from the settings that `sip setup` saved."""
    assert own_stack.cli("up", *SERVERS).returncode == 0
    time.sleep(1.5)  # appendfsync everysec: what `sip setup` wrote is on disk within a second
    redis = next(item for item in json.loads(own_stack.cli("status", "--json").stdout) if item["name"] == "redis")
    os.kill(redis["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        status = own_stack.cli("sip", "status")
        if status.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "our trunk" in status.stdout and "+15550111" in status.stdout
    after = {item["name"]: item for item in json.loads(own_stack.cli("status", "--json").stdout)}
    assert after["redis"]["up"] and after["redis"]["pid"] != redis["pid"]

    assert own_stack.cli("down").returncode == 0
    shutil.rmtree(own_stack.run_dir / "redis")
    again = own_stack.cli("up", *SERVERS)
    assert again.returncode == 0, again.stderr
    assert "create inbound trunk" in again.stdout and "create dispatch rule" in again.stdout
    status = own_stack.cli("sip", "status")
    assert status.returncode == 0 and "+15550111" in status.stdout, status.stdout + status.stderr


def test_generated_credentials_are_private_and_strong(tmp_path):
    stack = make_stack_dir(tmp_path, 23000)
    assert stat.S_IMODE(os.stat(stack.env_file).st_mode) == 0o600
    settings = stack.settings
    assert settings.api_key and settings.api_key != "devkey"
    assert len(settings.api_secret) >= 32 and settings.api_secret != "secret"


def test_down_stops_only_what_up_started(own_stack):
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        assert own_stack.cli("up", "--only", "redis").returncode == 0
        assert "redis" in own_stack.cli("down").stdout
        assert bystander.poll() is None
        assert own_stack.cli("down").stdout.strip() == "Nothing was running."
    finally:
        bystander.kill()


def test_taken_port_is_one_clear_line(own_stack):
    with socket.socket() as squatter:
        # As servers bind: connections an earlier test's redis left in TIME-WAIT on this port do not stop it.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 23000))
        squatter.listen()
        result = own_stack.cli("up", "--only", "redis")
    assert result.returncode == 1
    assert "port 23000" in result.stderr and "REDIS_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_remote_livekit_url_starts_no_local_livekit(tmp_path):
    stack = make_stack_dir(tmp_path, 23000, LIVEKIT_URL="wss://example.livekit.cloud")
    result = stack.cli("up", "--only", "redis", "--only", "livekit-server", "--no-provision")
    assert result.returncode == 0, result.stderr
    assert "starting no local LiveKit" in result.stdout
    assert not list(stack.run_dir.glob("pids/*.json"))


def test_livekit_server_binary_is_cached():
    assert installed_path(LIVEKIT_SERVER).exists()
    version = subprocess.run([installed_path(LIVEKIT_SERVER), "--version"], capture_output=True, text=True)
    assert "1.13.5" in version.stdout
