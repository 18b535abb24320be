"""`cli.py sip ...` against the real server: idempotent setup, list, teardown, and every bad input."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time

import httpx
import pytest
from livekit import api

from sip import provisioning
from stack.binaries import LIVEKIT_SERVER, installed_path

pytestmark = pytest.mark.stack
IDS = re.compile(r"trunk (ST_\w+)\s+rule (SDR_\w+)")


def sip_objects(stack):
    settings = stack.settings

    async def run():
        async with provisioning.livekit_api_of(settings) as lk:
            return await provisioning.list_all(lk)

    return asyncio.run(run())


@pytest.fixture
def clean_sip(stack_servers):
    """No trunks or rules of ours during the test; afterwards the shared stack is provisioned as before,
    for the call tests that share it (with its .env as before: `sip setup` saves the flags it is given there)."""
    saved_env = stack_servers.env_file.read_text()
    stack_servers.cli("sip", "teardown")
    yield stack_servers
    stack_servers.env_file.write_text(saved_env)
    stack_servers.cli("sip", "teardown")
    restored = stack_servers.cli("sip", "setup")
    assert restored.returncode == 0, restored.stderr


def outbound_trunks(stack) -> list[api.SIPOutboundTrunkInfo]:
    async def run():
        async with provisioning.livekit_api_of(stack.settings) as lk:
            return await provisioning.outbound_trunks(lk)

    return asyncio.run(run())


def test_an_outbound_trunk_is_provisioned_when_configured_kept_updated_and_removed(clean_sip):
    outbound = {"SIP_OUTBOUND_ADDRESS": "198.51.100.7:5060", "SIP_OUTBOUND_TRANSPORT": "tcp",
                "SIP_OUTBOUND_USERNAME": "acct", "SIP_OUTBOUND_PASSWORD": "s3cret", "SIP_OUTBOUND_NUMBER": "+15550142"}
    first = clean_sip.cli("sip", "setup", env=outbound)
    assert first.returncode == 0, first.stderr
    assert "create outbound trunk 'phone-assistant outbound' to 198.51.100.7:5060 as +15550142" in first.stdout
    (trunk,) = [t for t in outbound_trunks(clean_sip) if provisioning.is_managed(t)]
    assert (trunk.address, trunk.transport, list(trunk.numbers), trunk.auth_username) == (
        "198.51.100.7:5060", api.SIPTransport.SIP_TRANSPORT_TCP, ["+15550142"], "acct")
    again = clean_sip.cli("sip", "setup", env=outbound)
    assert f"keep outbound trunk {trunk.sip_trunk_id}" in again.stdout, again.stdout
    moved = clean_sip.cli("sip", "setup", env={**outbound, "SIP_OUTBOUND_ADDRESS": "198.51.100.8"})
    assert f"update outbound trunk {trunk.sip_trunk_id}" in moved.stdout, moved.stdout
    assert [t.address for t in outbound_trunks(clean_sip)] == ["198.51.100.8"]
    half = clean_sip.cli("sip", "setup", env={**outbound, "SIP_OUTBOUND_PASSWORD": ""})
    assert half.returncode != 0 and "SIP_OUTBOUND_PASSWORD" in half.stderr and len(half.stderr.splitlines()) == 1
    dropped = clean_sip.cli("sip", "setup")  # no SIP_OUTBOUND_ADDRESS any more
    assert f"delete outbound trunk {trunk.sip_trunk_id}" in dropped.stdout, dropped.stdout
    assert outbound_trunks(clean_sip) == []
    no_trunk = clean_sip.cli("dial", "+15550181", "--purpose", "Your order is ready")
    assert no_trunk.returncode == 1 and "SIP_OUTBOUND_ADDRESS" in no_trunk.stderr, no_trunk.stderr
    clean_sip.cli("sip", "setup", env=outbound)
    torn = clean_sip.cli("sip", "teardown")
    assert "outbound trunk" in torn.stdout and outbound_trunks(clean_sip) == []


def test_setup_is_idempotent_and_teardown_removes_it(clean_sip):
    first = clean_sip.cli("sip", "setup", "--number", "+15550123")
    assert first.returncode == 0, first.stderr
    assert "create inbound trunk" in first.stdout
    second = clean_sip.cli("sip", "setup", "--number", "+15550123")
    assert second.returncode == 0, second.stderr
    assert "keep inbound trunk" in second.stdout and "keep dispatch rule" in second.stdout
    assert IDS.search(first.stdout).groups() == IDS.search(second.stdout).groups()

    trunks, rules = sip_objects(clean_sip)
    (trunk,) = [t for t in trunks if provisioning.is_managed(t)]
    (rule,) = [r for r in rules if provisioning.is_managed(r)]
    assert list(trunk.numbers) == ["+15550123"]
    assert rule.rule.dispatch_rule_individual.room_prefix == "call-"
    assert [a.agent_name for a in rule.room_config.agents] == ["phone-assistant"]
    assert list(rule.trunk_ids) == [trunk.sip_trunk_id]

    listed = clean_sip.cli("sip", "list")
    assert trunk.sip_trunk_id in listed.stdout and rule.sip_dispatch_rule_id in listed.stdout

    changed = clean_sip.cli("sip", "setup", "--number", "+15550124", "--allowed-address", "127.0.0.1")
    assert "update inbound trunk" in changed.stdout
    assert IDS.search(changed.stdout).group(1) == trunk.sip_trunk_id

    torn = clean_sip.cli("sip", "teardown")
    assert trunk.sip_trunk_id in torn.stdout
    trunks, rules = sip_objects(clean_sip)
    assert not any(provisioning.is_managed(x) for x in [*trunks, *rules])


def test_flags_are_saved_to_env_so_the_next_setup_keeps_them(clean_sip):
    first = clean_sip.cli("sip", "setup", "--number", "+15550125", "--allowed-address", "127.0.0.1/32",
                          "--media-encryption", "allow")
    assert first.returncode == 0, first.stderr
    saved = clean_sip.env_file.read_text()
    assert "SIP_NUMBERS=+15550125" in saved and "SIP_ALLOWED_ADDRESSES=127.0.0.1/32" in saved
    assert "SIP_MEDIA_ENCRYPTION=allow" in saved
    again = clean_sip.cli("sip", "setup")  # what `make run` does at its next start
    assert "keep inbound trunk" in again.stdout, again.stdout
    (trunk,) = [t for t in sip_objects(clean_sip)[0] if provisioning.is_managed(t)]
    assert list(trunk.numbers) == ["+15550125"]
    assert trunk.media_encryption == api.SIPMediaEncryption.SIP_MEDIA_ENCRYPT_ALLOW


def test_dry_run_changes_nothing(clean_sip):
    plan = clean_sip.cli("sip", "setup", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "Plan (dry run" in plan.stdout and "create inbound trunk" in plan.stdout
    trunks, rules = sip_objects(clean_sip)
    assert not any(provisioning.is_managed(x) for x in [*trunks, *rules])


def test_foreign_trunk_is_a_conflict_and_survives_teardown(clean_sip):
    settings = clean_sip.settings

    async def create_foreign():
        async with provisioning.livekit_api_of(settings) as lk:
            return await lk.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(
                trunk=api.SIPInboundTrunkInfo(name="someone else's", numbers=["+15550177"])))

    async def delete(trunk_id):
        async with provisioning.livekit_api_of(settings) as lk:
            await lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk_id))

    foreign = asyncio.run(create_foreign())
    try:
        result = clean_sip.cli("sip", "setup", "--number", "+15550177")
        assert result.returncode == 1
        assert foreign.sip_trunk_id in result.stderr and "did not create" in result.stderr
        trunks, rules = sip_objects(clean_sip)
        assert not any(provisioning.is_managed(x) for x in [*trunks, *rules])  # nothing half-created

        assert clean_sip.cli("sip", "setup", "--number", "+15550178").returncode == 0
        clean_sip.cli("sip", "teardown")
        trunks, _ = sip_objects(clean_sip)
        assert [t.sip_trunk_id for t in trunks] == [foreign.sip_trunk_id]
    finally:
        asyncio.run(delete(foreign.sip_trunk_id))


@pytest.mark.parametrize("args, message", [
    (["--number", "12"], "invalid phone number '12'"),
    (["--number", "+1555abc"], "invalid phone number"),
    (["--allowed-address", "not-an-ip"], "invalid allowed address"),
    (["--auth-username", "carrier"], "needs both a username and a password"),
])
def test_invalid_input_creates_nothing(clean_sip, args, message):
    result = clean_sip.cli("sip", "setup", *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    trunks, rules = sip_objects(clean_sip)
    assert not any(provisioning.is_managed(x) for x in [*trunks, *rules])


def test_wrong_secret(stack_servers):
    result = stack_servers.cli("sip", "list", env={"LIVEKIT_API_SECRET": "x" * 40})
    assert result.returncode == 1
    assert "rejected the API key or secret" in result.stderr
    assert "LIVEKIT_API_SECRET" in result.stderr


def test_server_down(stack_servers):
    result = stack_servers.cli("sip", "setup", env={"LIVEKIT_URL": "ws://127.0.0.1:1"})
    assert result.returncode == 1
    assert "cannot reach LiveKit at http://127.0.0.1:1" in result.stderr
    assert "python cli.py up" in result.stderr


def test_server_without_redis_says_sip_is_not_enabled(stack_servers, tmp_path):
    """A livekit-server with no Redis answers every SIP call with an error; we turn it into one line."""
    port = 23501
    with open(tmp_path / "server.log", "wb") as server_log:  # the server keeps its own copy of the descriptor
        server = subprocess.Popen(
            [installed_path(LIVEKIT_SERVER), "--dev", "--bind", "127.0.0.1", "--port", str(port),
             "--udp-port", "23502", "--node-ip", "127.0.0.1"],
            stdout=server_log, stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        result = stack_servers.cli("sip", "setup", env={
            "LIVEKIT_URL": f"ws://127.0.0.1:{port}", "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret"})
        assert result.returncode == 1
        assert "SIP is not enabled" in result.stderr and "Redis" in result.stderr
    finally:
        server.terminate()
        server.wait(10)
