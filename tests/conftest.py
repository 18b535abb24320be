"""Shared fixtures: a real stack (redis, livekit-server, livekit-sip; on request the local endpoint and the agent)
started on its own block of ports in a temporary folder, and stopped at the end of the session.

Run the suite through `make test`, which puts it in a network namespace of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys

import pytest

from stack import lifecycle
from stack.components import SERVERS
from stack.settings import REPO_ROOT
from tests.support.postgres import postgres_server, server_bin_dir
from tests.support.stack import ARTIFACTS, LOCAL_ENDPOINT_KEY, RunningStack, make_stack_dir, stop_process

# Keys from the developer's shell must not leak into the tests (an OpenAI key would send audio to OpenAI). Each
# stack below has a .env of its own, which its processes read (Settings.env_for_processes passes PHONE_ENV_FILE).
for _key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET",
             "PHONE_ENV_FILE", "PHONE_RUN_DIR"):
    os.environ.pop(_key, None)
os.environ["HF_HUB_OFFLINE"] = "1"  # huggingface_hub reads it: never fetch model weights

SHARED_STACK_PORT_BASE = 21000
# The shared stack's agent sends its end-of-call webhooks here; tests/test_calls_page.py listens while its call runs
# (other tests' calls find nobody there: two tries, then failed).
SHARED_WEBHOOK_URL = f"http://127.0.0.1:{SHARED_STACK_PORT_BASE + 8}/hook"
_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server for the session (tests/support/postgres.py): its URL."""
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    server_bin_dir() is None, reason="needs PostgreSQL: python cli.py install --test-tools"))])
def call_store_url(request, tmp_path):
    """An empty call store: an SQLite file, or a new database on the session's PostgreSQL server. Tests that take
    it run once on each."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'calls.sqlite3'}"
    from sqlalchemy import create_engine, text

    server = request.getfixturevalue("postgres")
    name = f"calls_{next(_databases)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def store(call_store_url):
    """An empty call store, SQLite then PostgreSQL."""
    from calls.store import CallStore

    with CallStore.at(call_store_url) as opened:
        yield opened


@pytest.fixture(scope="session")
def stack_servers(tmp_path_factory) -> RunningStack:
    """redis + livekit-server + livekit-sip, up for the whole session."""
    stack = make_stack_dir(tmp_path_factory.mktemp("shared-stack"), SHARED_STACK_PORT_BASE,
                           SIP_NUMBERS="+15550100", BUSINESS_NAME="Harbor Dental",
                           BUSINESS_HOURS="Monday to Friday, 9 am to 5 pm", TRANSFER_NUMBER="+15550199",
                           PLAYGROUND_MAX_SESSIONS="3", CALL_WEBHOOK_URL=SHARED_WEBHOOK_URL,
                           CALL_WEBHOOK_ATTEMPTS="2",
                           # Off, but for the Calls page test's call: the local LLM summarizing each of the other
                           # tests' calls would take the CPU from the tests after them.
                           CALL_SUMMARIES="false")
    try:
        lifecycle.up(stack.settings, list(SERVERS))
        yield stack
    finally:
        lifecycle.down(stack.settings)
        _keep_logs(stack, "shared-stack")


@pytest.fixture(scope="session")
def provisioned_sip(stack_servers):
    """Our inbound trunk and dispatch rule on the shared stack."""
    from sip import provisioning

    settings = stack_servers.settings

    async def run():
        async with provisioning.livekit_api_of(settings) as lk:
            return await provisioning.setup(lk, provisioning.SipConfig.from_settings(settings))

    return asyncio.run(run())


@pytest.fixture(scope="session")
def agent_stack(stack_servers, provisioned_sip) -> RunningStack:
    """The shared stack plus the local OpenAI-compatible endpoint and the agent worker."""
    lifecycle.up(stack_servers.settings, ["local-openai", "agent"])
    return stack_servers


@pytest.fixture(scope="session")
def local_endpoint(tmp_path_factory) -> str:
    """`python -m local_openai` on its own port; its base URL (its key: LOCAL_ENDPOINT_KEY). Loads the models once
    for the session."""
    import time

    import httpx

    port = 21806
    log_path = tmp_path_factory.mktemp("endpoint") / "local_openai.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "local_openai", "--port", str(port)], cwd=REPO_ROOT,
                                  stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, "LOCAL_OPENAI_API_KEY": LOCAL_ENDPOINT_KEY})
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                assert server.poll() is None, log_path.read_text()
                time.sleep(0.5)
        yield base_url
    finally:
        stop_process(server)


def _keep_logs(stack: RunningStack, name: str) -> None:
    """Copies the stack's logs next to the other test artifacts, for a failed CI run."""
    target = ARTIFACTS / "logs" / name
    try:
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, 0o700)
        for log in stack.settings.log_dir.glob("*.log*"):
            copy = target / log.name
            copy.touch(mode=0o600)
            os.chmod(copy, 0o600)  # what callers said, and their numbers at debug level: private, as the logs are
            copy.write_bytes(log.read_bytes())
    except OSError:
        pass
