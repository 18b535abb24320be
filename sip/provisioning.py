"""Inbound SIP trunk and dispatch rule, and the outbound trunk when one is configured, provisioned idempotently through
livekit-api.

Everything setup creates carries `metadata=MANAGED_MARKER`, so setup reuses it and teardown deletes only it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from livekit import api
from livekit.protocol.agent_dispatch import RoomAgentDispatch
from livekit.protocol.room import RoomConfiguration

from stack.errors import StackError
from stack.settings import E164, Settings

MANAGED_MARKER = '{"managed_by": "phone-assistant sip setup"}'
# On the SIP participant (set by the dispatch rule): the trunk's maximum call duration, so that the agent can end the
# call politely before livekit-sip cuts it (agent/call_limits.py reads it).
MAX_DURATION_ATTRIBUTE = "phone_assistant.max_call_duration"
# SIP_MEDIA_ENCRYPTION: SRTP on the trunk's calls (livekit's SIPMediaEncryption).
MEDIA_ENCRYPTION = {
    "disable": api.SIPMediaEncryption.SIP_MEDIA_ENCRYPT_DISABLE,
    "allow": api.SIPMediaEncryption.SIP_MEDIA_ENCRYPT_ALLOW,
    "require": api.SIPMediaEncryption.SIP_MEDIA_ENCRYPT_REQUIRE,
}


TRANSPORTS = {
    "auto": api.SIPTransport.SIP_TRANSPORT_AUTO,
    "udp": api.SIPTransport.SIP_TRANSPORT_UDP,
    "tcp": api.SIPTransport.SIP_TRANSPORT_TCP,
    "tls": api.SIPTransport.SIP_TRANSPORT_TLS,
}


def _duration(seconds: int) -> dict | None:
    """A protobuf Duration, as the message constructor takes it."""
    return {"seconds": seconds} if seconds else None


@dataclass(frozen=True)
class SipConfig:
    numbers: list[str]
    allowed_addresses: list[str] = field(default_factory=list)
    allowed_numbers: list[str] = field(default_factory=list)
    auth_username: str = ""
    auth_password: str = ""
    room_prefix: str = Settings.default("sip_room_prefix")
    agent_name: str = Settings.default("agent_name")
    media_encryption: str = Settings.default("sip_media_encryption")
    allow_open_trunk: bool = False
    # Call limits on the trunk (seconds; 0: livekit-sip's own, 24 h and 3 min). livekit-sip ends a call at
    # max_call_duration, and gives up on a call no agent has answered after ringing_timeout (the first call after a
    # start may wait for the agent's models: not much less than a minute).
    max_call_duration: int = Settings.default("sip_max_call_duration")
    ringing_timeout: int = Settings.default("sip_ringing_timeout")
    trunk_name: str = "phone-assistant inbound"
    rule_name: str = "phone-assistant dispatch"
    # Outbound calls (`cli.py dial`): an outbound trunk to this SIP server when it is set.
    outbound_address: str = ""
    outbound_transport: str = Settings.default("sip_outbound_transport")
    outbound_username: str = ""
    outbound_password: str = ""
    outbound_number: str = ""  # caller ID; empty: the first of `numbers`
    outbound_trunk_name: str = "phone-assistant outbound"

    @classmethod
    def from_settings(cls, settings: Settings) -> SipConfig:
        return cls(
            numbers=list(settings.sip_numbers),
            allowed_addresses=list(settings.sip_allowed_addresses),
            allowed_numbers=list(settings.sip_allowed_numbers),
            auth_username=settings.sip_auth_username,
            auth_password=settings.sip_auth_password,
            room_prefix=settings.sip_room_prefix,
            agent_name=settings.agent_name,
            media_encryption=settings.sip_media_encryption,
            allow_open_trunk=settings.sip_allow_open_trunk,
            max_call_duration=settings.sip_max_call_duration,
            ringing_timeout=settings.sip_ringing_timeout,
            outbound_address=settings.sip_outbound_address,
            outbound_transport=settings.sip_outbound_transport,
            outbound_username=settings.sip_outbound_username,
            outbound_password=settings.sip_outbound_password,
            outbound_number=settings.sip_outbound_number,
        )

    @property
    def is_open(self) -> bool:
        """Anyone who reaches livekit-sip may call: no digest auth and no source-address list."""
        return not self.auth_username and not self.allowed_addresses

    def validate(self, exposed_at: str = "") -> None:
        """Bad input is refused before anything is sent, so nothing is half-created. `exposed_at` names where SIP
        is reachable from other hosts (empty: loopback only); there an open trunk needs allow_open_trunk."""
        if not self.numbers:
            raise StackError("no SIP number configured: pass --number +15550100 or set SIP_NUMBERS in .env")
        for number in [*self.numbers, *self.allowed_numbers]:
            if not E164.match(number):
                raise StackError(f"invalid phone number {number!r}: use E.164 digits, e.g. +15550100")
        for address in self.allowed_addresses:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise StackError(
                    f"invalid allowed address {address!r}: use an IP or CIDR, e.g. 203.0.113.0/24") from None
        if bool(self.auth_username) != bool(self.auth_password):
            raise StackError("SIP auth needs both a username and a password (SIP_AUTH_USERNAME, SIP_AUTH_PASSWORD)")
        if not self.agent_name:
            raise StackError("AGENT_NAME is empty: the dispatch rule needs the agent's name")
        if self.media_encryption not in MEDIA_ENCRYPTION:
            raise StackError(f"SIP_MEDIA_ENCRYPTION={self.media_encryption!r} is not one of "
                             f"{', '.join(MEDIA_ENCRYPTION)}: disable (plain RTP), allow (SRTP when the carrier offers "
                             "it) or require (SRTP only)")
        if bool(self.outbound_username) != bool(self.outbound_password):
            raise StackError("outbound SIP auth needs both a username and a password (SIP_OUTBOUND_USERNAME, "
                             "SIP_OUTBOUND_PASSWORD)")
        if self.outbound_transport not in TRANSPORTS:
            raise StackError(f"SIP_OUTBOUND_TRANSPORT={self.outbound_transport!r} is not one of "
                             f"{', '.join(TRANSPORTS)}")
        if exposed_at and self.is_open and not self.allow_open_trunk:
            raise StackError(
                f"refusing an open trunk: SIP is reachable at {exposed_at}, and a trunk with neither digest auth nor "
                "allowed addresses takes calls from anyone who finds it (scanners, toll fraud). Set SIP_AUTH_USERNAME "
                "and SIP_AUTH_PASSWORD (--auth-username/--auth-password), or SIP_ALLOWED_ADDRESSES (--allowed-address; "
                "--carrier twilio or telnyx fills in theirs), or pass --allow-open-trunk if you really mean it")

    def trunk(self) -> api.SIPInboundTrunkInfo:
        return api.SIPInboundTrunkInfo(
            name=self.trunk_name,
            metadata=MANAGED_MARKER,
            numbers=self.numbers,
            allowed_addresses=self.allowed_addresses,
            allowed_numbers=self.allowed_numbers,
            auth_username=self.auth_username,
            auth_password=self.auth_password,
            media_encryption=MEDIA_ENCRYPTION.get(self.media_encryption, MEDIA_ENCRYPTION["disable"]),
            max_call_duration=_duration(self.max_call_duration),
            ringing_timeout=_duration(self.ringing_timeout),
        )

    def outbound_trunk(self) -> api.SIPOutboundTrunkInfo | None:
        """The outbound trunk (None: no SIP_OUTBOUND_ADDRESS, no outbound calls)."""
        if not self.outbound_address:
            return None
        return api.SIPOutboundTrunkInfo(
            name=self.outbound_trunk_name,
            metadata=MANAGED_MARKER,
            address=self.outbound_address,
            transport=TRANSPORTS[self.outbound_transport],
            numbers=[self.outbound_number or self.numbers[0]],
            auth_username=self.outbound_username,
            auth_password=self.outbound_password,
            media_encryption=MEDIA_ENCRYPTION.get(self.media_encryption, MEDIA_ENCRYPTION["disable"]),
        )

    def rule(self, trunk_id: str) -> api.SIPDispatchRuleInfo:
        return api.SIPDispatchRuleInfo(
            name=self.rule_name,
            metadata=MANAGED_MARKER,
            trunk_ids=[trunk_id],
            # One room per caller; explicit dispatch of our agent by name, as LiveKit recommends for telephony.
            rule=api.SIPDispatchRule(
                dispatch_rule_individual=api.SIPDispatchRuleIndividual(room_prefix=self.room_prefix)
            ),
            room_config=RoomConfiguration(agents=[RoomAgentDispatch(agent_name=self.agent_name)]),
            attributes={MAX_DURATION_ATTRIBUTE: str(self.max_call_duration)} if self.max_call_duration else {},
        )


@dataclass
class SetupResult:
    trunk_id: str
    rule_id: str
    actions: list[str]
    outbound_trunk_id: str = ""  # "": no outbound trunk configured


async def participants_of(lk: api.LiveKitAPI, rooms: list[api.Room]) -> list[list[api.ParticipantInfo]]:
    """Who is in each of `rooms`, asked of the server all at once."""
    answers = await asyncio.gather(*(lk.room.list_participants(api.ListParticipantsRequest(room=room.name))
                                     for room in rooms))
    return [list(answer.participants) for answer in answers]


def livekit_api_of(settings) -> contextlib.AbstractAsyncContextManager[api.LiveKitAPI]:
    """`livekit_api` for the LiveKit server these settings name, with their key and secret."""
    return livekit_api(settings.livekit_url, settings.api_key, settings.api_secret)


@contextlib.asynccontextmanager
async def livekit_api(url: str, api_key: str, api_secret: str) -> AsyncIterator[api.LiveKitAPI]:
    """A LiveKitAPI client whose failures become one actionable line each."""
    if not api_key or not api_secret:
        raise StackError("LIVEKIT_API_KEY / LIVEKIT_API_SECRET are not set: run `python cli.py up` or set them in .env")
    http_url = url.replace("wss://", "https://").replace("ws://", "http://")
    # No failover retries: a down server should say so now, not after a minute of backoff.
    client = api.LiveKitAPI(http_url, api_key, api_secret, timeout=aiohttp.ClientTimeout(total=15), failover=False)
    try:
        yield client
    except aiohttp.ClientConnectorError as error:
        raise StackError(
            f"cannot reach LiveKit at {http_url} ({error.os_error or error}): is it running? "
            "Start it with `python cli.py up`, or fix LIVEKIT_URL"
        ) from None
    except (aiohttp.ServerTimeoutError, TimeoutError):
        raise StackError(f"LiveKit at {http_url} did not answer within 15 s: check LIVEKIT_URL") from None
    except api.TwirpError as error:
        raise StackError(explain_api_error(error, http_url)) from None
    finally:
        await client.aclose()


def explain_api_error(error: api.TwirpError, url: str) -> str:
    message = error.message or f"HTTP {error.status}"
    if error.status == 401 or error.code == "unauthenticated":
        return (f"LiveKit at {url} rejected the API key or secret ({message}): "
                "check LIVEKIT_API_KEY and LIVEKIT_API_SECRET in .env")
    if "sip not connected" in message.lower() or "redis required" in message.lower():
        return (f"SIP is not enabled on LiveKit at {url} ({message}): livekit-server needs Redis and a running "
                "livekit-sip; `python cli.py up` starts both")
    return f"LiveKit at {url} refused the request: {message} ({error.code})"


def is_managed(item: api.SIPInboundTrunkInfo | api.SIPDispatchRuleInfo) -> bool:
    return item.metadata == MANAGED_MARKER


async def list_all(lk: api.LiveKitAPI) -> tuple[list[api.SIPInboundTrunkInfo], list[api.SIPDispatchRuleInfo]]:
    trunks = await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
    rules = await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
    return list(trunks.items), list(rules.items)


def _same_trunk(current: api.SIPInboundTrunkInfo, wanted: api.SIPInboundTrunkInfo) -> bool:
    fields = ("numbers", "allowed_addresses", "allowed_numbers", "auth_username", "auth_password", "media_encryption")
    def value(trunk, name):
        found = getattr(trunk, name)
        return found if isinstance(found, str | int) else list(found)

    return all(value(current, f) == value(wanted, f) for f in fields)


def _same_outbound_trunk(current: api.SIPOutboundTrunkInfo, wanted: api.SIPOutboundTrunkInfo) -> bool:
    fields = ("address", "transport", "numbers", "auth_username", "auth_password", "media_encryption")
    return all((list(getattr(current, f)) if f == "numbers" else getattr(current, f)) ==
               (list(getattr(wanted, f)) if f == "numbers" else getattr(wanted, f)) for f in fields)


async def outbound_trunks(lk: api.LiveKitAPI) -> list[api.SIPOutboundTrunkInfo]:
    return list((await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())).items)


async def managed_outbound_trunk(lk: api.LiveKitAPI) -> api.SIPOutboundTrunkInfo | None:
    """Our outbound trunk, if `sip setup` made one."""
    return next((trunk for trunk in await outbound_trunks(lk) if is_managed(trunk)), None)


def _same_rule(current: api.SIPDispatchRuleInfo, wanted: api.SIPDispatchRuleInfo) -> bool:
    return (current.rule == wanted.rule and list(current.trunk_ids) == list(wanted.trunk_ids)
            and current.room_config == wanted.room_config and dict(current.attributes) == dict(wanted.attributes))


def _check_conflicts(config: SipConfig, trunks: list[api.SIPInboundTrunkInfo], rules: list[api.SIPDispatchRuleInfo]):
    for trunk in trunks:
        if is_managed(trunk):
            continue
        if trunk.name == config.trunk_name:
            raise StackError(f"a trunk named {trunk.name!r} ({trunk.sip_trunk_id}) exists that `sip setup` did not "
                             "create; rename or delete it (`python cli.py sip list`)")
        shared = set(trunk.numbers) & set(config.numbers)
        if shared:
            raise StackError(
                f"number {', '.join(sorted(shared))} already belongs to trunk {trunk.sip_trunk_id} "
                f"({trunk.name or 'unnamed'}) that `sip setup` did not create; delete it with "
                f"`lk sip inbound delete {trunk.sip_trunk_id}` or choose other numbers (--number / SIP_NUMBERS)"
            )
    for rule in rules:
        if not is_managed(rule) and rule.name == config.rule_name:
            raise StackError(f"a dispatch rule named {rule.name!r} ({rule.sip_dispatch_rule_id}) exists that "
                             "`sip setup` did not create; rename or delete it")


async def setup(lk: api.LiveKitAPI, config: SipConfig, dry_run: bool = False, exposed_at: str = "") -> SetupResult:
    """Creates, updates or keeps our trunk and rule. Running it twice changes nothing and returns the same IDs.
    `exposed_at`: where SIP is reachable from other hosts, if it is (an open trunk is refused there)."""
    config.validate(exposed_at)
    trunks, rules = await list_all(lk)
    _check_conflicts(config, trunks, rules)
    actions: list[str] = []
    current_trunk = next((t for t in trunks if is_managed(t) and t.name == config.trunk_name), None)
    trunk_id, created_trunk = await _reconcile(
        "inbound trunk", "sip_trunk_id", current_trunk, config.trunk(), _same_trunk, dry_run, actions,
        create=lambda wanted: lk.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=wanted)),
        update=lk.sip.update_inbound_trunk,
        describe_new=f"{config.trunk_name!r} for {', '.join(config.numbers)}")
    current_rule = next((r for r in rules if is_managed(r) and r.name == config.rule_name), None)
    try:
        rule_id, _ = await _reconcile(
            "dispatch rule", "sip_dispatch_rule_id", current_rule, config.rule(trunk_id), _same_rule, dry_run, actions,
            create=lambda wanted: lk.sip.create_dispatch_rule(api.CreateSIPDispatchRuleRequest(dispatch_rule=wanted)),
            update=lk.sip.update_dispatch_rule,
            describe_new=f"{config.rule_name!r}: room per caller '{config.room_prefix}...', "
                         f"agent {config.agent_name!r}")
    except Exception:
        if created_trunk:  # nothing half-created
            await lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk_id))
        raise
    outbound_id = await _reconcile_outbound(lk, config, dry_run, actions)
    return SetupResult(trunk_id, rule_id, actions, outbound_id)


async def _reconcile_outbound(lk: api.LiveKitAPI, config: SipConfig, dry_run: bool, actions: list[str]) -> str:
    """Creates, updates or keeps our outbound trunk; deletes it when no outbound address is configured any more."""
    current = await managed_outbound_trunk(lk)
    wanted = config.outbound_trunk()
    if wanted is None:
        if current is not None:
            actions.append(f"delete outbound trunk {current.sip_trunk_id} (no SIP_OUTBOUND_ADDRESS)")
            if not dry_run:
                await lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=current.sip_trunk_id))
        return ""
    for trunk in await outbound_trunks(lk):
        if not is_managed(trunk) and trunk.name == config.outbound_trunk_name:
            raise StackError(f"an outbound trunk named {trunk.name!r} ({trunk.sip_trunk_id}) exists that `sip setup` "
                             "did not create; rename or delete it")
    trunk_id, _ = await _reconcile(
        "outbound trunk", "sip_trunk_id", current, wanted, _same_outbound_trunk, dry_run, actions,
        create=lambda trunk: lk.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(trunk=trunk)),
        update=lk.sip.update_outbound_trunk,
        describe_new=f"{config.outbound_trunk_name!r} to {config.outbound_address} as {wanted.numbers[0]}")
    return trunk_id


async def _reconcile(kind, id_field, current, wanted, same, dry_run, actions, create, update, describe_new):
    """Creates `wanted`, or keeps or updates `current`; returns (its id, whether it was created now)."""
    if current is None:
        actions.append(f"create {kind} {describe_new}")
        if dry_run:
            return f"(new {kind})", False
        return getattr(await create(wanted), id_field), True
    item_id = getattr(current, id_field)
    if same(current, wanted):
        actions.append(f"keep {kind} {item_id}")
    else:
        actions.append(f"update {kind} {item_id}")
        if not dry_run:
            setattr(wanted, id_field, item_id)
            await update(item_id, wanted)
    return item_id, False


async def teardown(lk: api.LiveKitAPI) -> list[str]:
    """Deletes only what setup created (rules first, since they point at trunks)."""
    trunks, rules = await list_all(lk)
    deleted = []
    for rule in filter(is_managed, rules):
        await lk.sip.delete_dispatch_rule(
            api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=rule.sip_dispatch_rule_id))
        deleted.append(f"dispatch rule {rule.sip_dispatch_rule_id} ({rule.name})")
    for trunk in filter(is_managed, trunks):
        await lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk.sip_trunk_id))
        deleted.append(f"inbound trunk {trunk.sip_trunk_id} ({trunk.name})")
    if outbound := await managed_outbound_trunk(lk):
        await lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=outbound.sip_trunk_id))
        deleted.append(f"outbound trunk {outbound.sip_trunk_id} ({outbound.name})")
    return deleted
