"""Carrier presets for `sip setup --carrier`: what is known about each carrier's side of an inbound trunk, and the
settings to enter there. Sources (read 2026-11; carriers change these, so check before opening a firewall):

- Twilio Elastic SIP Trunking: https://www.twilio.com/docs/sip-trunking/ip-addresses (signalling: one /30 per edge
  location; Twilio asks to allow all of them), https://www.twilio.com/docs/voice/voice-media-ip-expansion-security-faq
  (media: 168.86.128.0/18, UDP 10000-60000). Twilio's origination sends no digest credentials: its calls are told
  apart by source address.
- Telnyx: https://sip.telnyx.com (signalling addresses per SIP region; media subnets; RTP 16384-32768), and
  https://developers.telnyx.com/docs/voice/sip-trunking/network-configuration/ip-whitelisting (ports). Inbound calls
  to an IP/FQDN connection come from the region chosen on the connection (US unless changed), from either address.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Carrier:
    name: str
    title: str
    # Where the carrier's INVITEs come from: the trunk's allowed_addresses.
    signalling: tuple[str, ...]
    media: str  # where its RTP comes from, in words (the firewall needs it; the trunk does not)
    sends_digest_auth: bool
    source: str
    notes: tuple[str, ...] = field(default_factory=tuple)


TWILIO = Carrier(
    name="twilio",
    title="Twilio Elastic SIP Trunking",
    signalling=(
        "54.172.60.0/30",     # North America, Virginia
        "54.244.51.0/30",     # North America, Oregon
        "54.171.127.192/30",  # Europe, Ireland
        "35.156.191.128/30",  # Europe, Frankfurt
        "54.65.63.192/30",    # Asia Pacific, Tokyo
        "54.169.127.128/30",  # Asia Pacific, Singapore
        "54.252.254.64/30",   # Asia Pacific, Sydney
        "177.71.206.192/30",  # South America, Sao Paulo
    ),
    media="168.86.128.0/18, UDP 10000-60000",
    sends_digest_auth=False,
    source="https://www.twilio.com/docs/sip-trunking/ip-addresses",
    notes=(
        "Twilio sends no digest credentials on origination: the trunk admits Twilio's signalling addresses only.",
        "Enable 'Call Transfer (SIP REFER)' on the trunk for the assistant's cold transfers.",
    ),
)
TELNYX = Carrier(
    name="telnyx",
    title="Telnyx SIP trunking (an IP or FQDN connection)",
    signalling=(
        "192.76.120.10/32", "64.16.250.10/32",     # US
        "192.76.120.31/32", "64.16.250.13/32",     # Canada
        "185.246.41.140/32", "185.246.41.141/32",  # Europe
        "103.115.244.145/32", "103.115.244.146/32",  # Australia
        "103.115.244.158/32", "103.115.244.159/32",  # Asia (beta)
    ),
    media="the media subnets listed on https://sip.telnyx.com, UDP 16384-32768",
    sends_digest_auth=False,
    source="https://sip.telnyx.com",
    notes=(
        "Telnyx's failover page lists other addresses for some regions; allow what sip.telnyx.com lists for the "
        "region chosen on the connection.",
    ),
)
GENERIC = Carrier(
    name="generic",
    title="any SIP trunk or PBX (Asterisk, FreeSWITCH, another carrier)",
    signalling=(),
    media="the carrier's media addresses (ask the carrier)",
    sends_digest_auth=True,
    source="",
    notes=("Give the carrier's signalling addresses with --allowed-address, digest credentials with "
           "--auth-username/--auth-password, or both.",),
)
CARRIERS = {carrier.name: carrier for carrier in (TWILIO, TELNYX, GENERIC)}


def carrier_side_settings(carrier: Carrier, address: str, port: int, transport: str, numbers: list[str],
                          auth_username: str, media_encryption: str, rtp_ports: tuple[int, int],
                          allowed_addresses: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The exact settings to enter on the carrier's side, one line each (headings, then their items indented).
    `transport` is udp or tls; `allowed_addresses`, the trunk's (the firewall admits SIP from those)."""
    uri = f"sip:{address}:{port}" + (";transport=tls" if transport == "tls" else "")
    numbers_text = ", ".join(numbers)
    lines = []
    if carrier is TWILIO:
        lines += [
            "In the Twilio console, Elastic SIP Trunking > Trunks > your trunk:",
            f"  Origination > Origination SIP URI: {uri}  (priority 10, weight 10)",
            f"  Numbers: attach {numbers_text} to this trunk",
            "  General > Call Transfer (SIP REFER): enabled, so that the assistant can transfer callers",
        ]
        if media_encryption != "disable":
            lines.append("  General > Secure Trunking: enabled (Twilio then uses TLS and SRTP together: the URI "
                         "above must be the TLS one)")
    elif carrier is TELNYX:
        lines += [
            "In the Telnyx portal, Voice > SIP Trunking > your connection, with IP address authentication:",
            f"  IP address {address}, port {port}",
            f"  Inbound > SIP transport protocol: {transport.upper()}",
            f"  Numbers: assign {numbers_text} to this connection",
        ]
        if media_encryption != "disable":
            lines.append("  Inbound > Encrypted media: SRTP")
    else:
        lines += [
            f"On the carrier or PBX, a trunk that sends calls for {numbers_text} to {uri}",
            f"  Asterisk (pjsip.conf): an endpoint whose aor has contact {uri}, with 'outbound_auth' when "
            "credentials are set",
            f"  FreeSWITCH: a gateway with proxy {address}:{port}, register=false, transport {transport}",
        ]
        if auth_username:
            lines.append(f"  Digest credentials to answer our 407 challenge: username {auth_username} and the "
                         "password set with --auth-password (SIP_AUTH_PASSWORD)")
        if media_encryption != "disable":
            lines.append(f"  SRTP (SDES): {'required' if media_encryption == 'require' else 'offered'}")
    start, end = rtp_ports
    sources = ", ".join(allowed_addresses or carrier.signalling) or "the carrier's signalling addresses"
    lines += [
        "Firewall on this machine (docs/deploy.md):",
        f"  SIP {'TCP' if transport == 'tls' else 'UDP and TCP'} {port} from {sources}",
        f"  RTP UDP {start}-{end} from {carrier.media}",
    ]
    if carrier.source:
        lines.append(f"  (addresses from {carrier.source}; check them there before opening the firewall)")
    lines += list(carrier.notes)
    return lines
