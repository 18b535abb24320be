"""The stack's own state: the port check binds as the servers do, files are written whole, and one `up` or `down`
runs at a time on a run folder."""

from __future__ import annotations

import errno
import os
import socket
import stat

import pytest

from stack import lifecycle
from stack.credentials import save_env_values
from stack.errors import StackError
from stack.files import atomic_write
from stack.processes import ensure_port_free
from tests.support.stack import make_stack_dir
from tests.support.webhook_receiver import free_port

pytestmark = pytest.mark.unit


def leave_time_wait(port: int) -> None:
    """A server on `port` that served one connection and stopped, closing first: its side stays in TIME-WAIT."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        client = socket.create_connection(("127.0.0.1", port))
        served, _ = server.accept()
        served.close()  # the server hangs up first ...
        client.recv(1)
        client.close()  # ... and the client answers


def test_a_port_in_time_wait_is_free_for_a_server_that_binds_as_ours_do():
    port = free_port()
    leave_time_wait(port)
    with socket.socket() as plain, pytest.raises(OSError) as taken:
        plain.bind(("127.0.0.1", port))  # the old check's way: TIME-WAIT blocks it
    assert taken.value.errno == errno.EADDRINUSE
    ensure_port_free(port, "local-openai", "LOCAL_OPENAI_PORT")  # `down` then `up` at once works


def test_a_listening_port_is_still_taken():
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(StackError) as error:
            ensure_port_free(port, "local-openai", "LOCAL_OPENAI_PORT")
    assert f"TCP port {port} on 127.0.0.1 (needed by local-openai) is taken" in str(error.value)
    assert "LOCAL_OPENAI_PORT" in str(error.value) and "\n" not in str(error.value)


def test_a_bound_udp_port_is_taken():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        with pytest.raises(StackError, match="UDP port"):
            ensure_port_free(squatter.getsockname()[1], "livekit-sip", "SIP_PORT", udp=True)


def test_env_values_are_written_whole_private_and_in_place(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# my settings\nBUSINESS_NAME=Foo Bakery\nLIVEKIT_API_KEY=old\nexport REDIS_PORT=6400\n")
    os.chmod(env, 0o644)
    save_env_values(env, LIVEKIT_API_KEY="APInew", LIVEKIT_API_SECRET="s" * 48, REDIS_PORT="6401")
    assert env.read_text() == ("# my settings\nBUSINESS_NAME=Foo Bakery\nLIVEKIT_API_KEY=APInew\nREDIS_PORT=6401\n"
                               f"LIVEKIT_API_SECRET={'s' * 48}\n")
    assert stat.S_IMODE(os.stat(env).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]  # no temporary file left


def test_a_write_that_fails_leaves_the_old_file(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text("LIVEKIT_API_KEY=kept\n")

    def fail(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        save_env_values(env, LIVEKIT_API_KEY="new", LIVEKIT_API_SECRET="x" * 48)
    assert env.read_text() == "LIVEKIT_API_KEY=kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_atomic_write_makes_a_private_file_from_the_first_byte(tmp_path):
    target = tmp_path / "config" / "livekit-sip.yaml"
    atomic_write(target, "api_secret: x\n")
    assert target.read_text() == "api_secret: x\n" and stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_one_up_or_down_at_a_time(tmp_path):
    stack = make_stack_dir(tmp_path, 23400)
    with lifecycle.exclusive(stack.settings, "up"):
        for command in (["up", "--only", "redis"], ["down"]):
            result = stack.cli(*command, timeout=60)
            assert result.returncode == 1, result.stdout
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert f"`cli.py up` (pid {os.getpid()}) is already running on {stack.run_dir}" in lines[0]
        with lifecycle.exclusive(stack.settings, "down"):  # the same process may go on (lifecycle.up inside up)
            pass
    assert stack.cli("down", timeout=60).stdout.strip() == "Nothing was running."
