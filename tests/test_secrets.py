"""No secret in any log, command line, pid file or test artifact of a running stack; logs private.

The secrets are the LiveKit API secret, the local endpoint's key, and the SIP digest password. (The LiveKit API
key is an identifier, like a user name: livekit-server logs it with each job, and that is no leak.)
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import psutil
import pytest

from stack.processes import ProcessTable
from tests.support.stack import ARTIFACTS, make_stack_dir

SERVERS_AND_PAGE = ["--only", "redis", "--only", "livekit-server", "--only", "livekit-sip", "--only", "playground"]


def secrets_of(settings) -> dict[str, str]:
    values = {"LIVEKIT_API_SECRET": settings.api_secret, "LOCAL_OPENAI_API_KEY": settings.local_openai_api_key,
              "SIP_AUTH_PASSWORD": settings.sip_auth_password, "OPENAI_API_KEY": settings.openai_api_key,
              "CALL_WEBHOOK_SECRET": settings.call_webhook_secret, "PLAYGROUND_PASSWORD": settings.playground_password}
    return {key: value for key, value in values.items() if value}


def leaks(settings, folders: list[Path] = ()) -> list[str]:
    """Where a secret shows: "<key> in <place>" for each."""
    secrets = secrets_of(settings)
    found = []

    def check(text: str, place: str) -> None:
        found.extend(f"{key} in {place}" for key, value in secrets.items() if value in text)

    table = ProcessTable(settings.run_dir)
    for name in sorted(path.stem for path in table.pid_dir.glob("*.json")):  # all that `up` started, and children
        process = table.running(name)
        for member in [process, *process.children(recursive=True)] if process else []:
            try:
                check(" ".join(member.cmdline()), f"the command line of {name} (pid {member.pid})")
            except psutil.NoSuchProcess:
                pass
    for folder in [settings.run_dir / "pids", settings.log_dir, *folders]:
        for path in folder.rglob("*") if folder.exists() else ():
            if path.is_file():
                check(path.read_text(errors="replace"), str(path))
    return found


def assert_private_logs(settings) -> None:
    assert stat.S_IMODE(os.stat(settings.log_dir).st_mode) == 0o700
    for log in settings.log_dir.iterdir():
        assert stat.S_IMODE(os.stat(log).st_mode) == 0o600, log


@pytest.mark.stack
def test_a_running_stack_shows_no_secret(tmp_path):
    stack = make_stack_dir(tmp_path, 23200, SIP_AUTH_USERNAME="carrier", SIP_AUTH_PASSWORD="digest-" + "p" * 24)
    try:
        started = stack.cli("up", *SERVERS_AND_PAGE)
        assert started.returncode == 0, started.stderr
        settings = stack.settings
        assert set(secrets_of(settings)) >= {"LIVEKIT_API_SECRET", "LOCAL_OPENAI_API_KEY", "SIP_AUTH_PASSWORD"}
        for secret in secrets_of(settings).values():
            assert secret not in started.stdout + started.stderr
        assert leaks(settings) == []
        assert_private_logs(settings)
        # The check can fail: a secret on a command line is found.
        table = ProcessTable(settings.run_dir)
        table.start("canary", [sys.executable, "-c", "import time; time.sleep(30)", settings.api_secret],
                    dict(os.environ), settings.log_dir / "canary.log", tmp_path)
        try:
            found = leaks(settings)
            assert any(leak.startswith("LIVEKIT_API_SECRET in the command line of canary") for leak in found), found
            assert any(leak.endswith("canary.log") for leak in found), found
        finally:
            table.stop("canary")
    finally:
        stack.cli("down")


@pytest.mark.call
def test_the_shared_stack_with_the_agent_shows_no_secret(agent_stack):
    """The stack the call tests use, with the endpoint and the agent running, and the artifacts tests leave."""
    settings = agent_stack.settings
    assert set(secrets_of(settings)) >= {"LIVEKIT_API_SECRET", "LOCAL_OPENAI_API_KEY"}
    assert leaks(settings, [ARTIFACTS]) == []
    assert_private_logs(settings)
