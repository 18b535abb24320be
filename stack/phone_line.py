"""The phone line: where livekit-sip listens, what it advertises to the carrier, TLS, and what that exposes.

Only SIP (UDP and TCP on SIP_PORT, TLS on SIP_TLS_PORT) and RTP (SIP_RTP_PORTS) face the carrier. livekit-server,
Redis, the local AI endpoint, the agent and the playground stay on 127.0.0.1 whatever is set here.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from .errors import StackError
from .settings import ANY_ADDRESS, Settings

HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]"
                      r"([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Exposure:
    """One thing livekit-sip opens, and to whom: `status` prints these."""
    what: str
    protocol: str
    address: str
    note: str = ""

    def describe(self) -> str:
        return f"{self.what:<12} {self.protocol:<8} {self.address}" + (f"  ({self.note})" if self.note else "")


def _ipv4(key: str, value: str, example: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise StackError(f"{key}={value!r} is not an IPv4 address: {example}") from None


def check(settings: Settings) -> None:
    """Refuses a phone-line configuration livekit-sip would start with but could not take calls on; one line each."""
    listen = _ipv4("SIP_LISTEN_IP", settings.sip_listen_ip,
                   "set it to this machine's address facing the carrier (e.g. 203.0.113.10), 0.0.0.0 for every "
                   "address, or 127.0.0.1 for local calls only")
    if settings.sip_public_ip:
        public = _ipv4("SIP_PUBLIC_IP", settings.sip_public_ip,
                       "set it to the public address the carrier sends calls to (e.g. 203.0.113.10), or leave it empty")
        if public.is_unspecified:
            raise StackError("SIP_PUBLIC_IP=0.0.0.0 cannot be advertised: set the public address the carrier sends "
                             "calls to, or leave it empty to advertise SIP_LISTEN_IP")
        if listen.is_loopback and not public.is_loopback:
            raise StackError(f"SIP_PUBLIC_IP is {public} but SIP_LISTEN_IP is {listen}, which no carrier can reach: "
                             "set SIP_LISTEN_IP to this machine's address (or 0.0.0.0)")
    elif listen.is_unspecified:
        raise StackError("SIP_LISTEN_IP=0.0.0.0 needs SIP_PUBLIC_IP, the address the carrier sends calls and media to "
                         "(e.g. SIP_PUBLIC_IP=203.0.113.10; `--sip-public-ip` on `cli.py up`)")
    if not listen.is_unspecified and not listen.is_loopback:
        _check_local_address(str(listen))
    if settings.sip_tls:
        _check_tls(settings)
    if settings.sip_hostname and not HOSTNAME.match(settings.sip_hostname):
        raise StackError(f"SIP_HOSTNAME={settings.sip_hostname!r} is not a DNS name: set the name on the TLS "
                         "certificate, e.g. sip.example.com (no scheme, no port)")
    start, end = settings.sip_rtp_ports
    if not 1024 <= start <= end <= 65535:
        raise StackError(f"SIP_RTP_PORTS={start}-{end} is not a usable range: use e.g. 10000-10100 (first-last)")
    clashes = {settings.sip_port, settings.sip_tls_port} & set(range(start, end + 1))
    if clashes or (settings.sip_tls and settings.sip_tls_port == settings.sip_port):
        raise StackError(f"SIP_PORT ({settings.sip_port}), SIP_TLS_PORT ({settings.sip_tls_port}) and SIP_RTP_PORTS "
                         f"({start}-{end}) overlap: give each its own ports")


def _check_local_address(address: str) -> None:
    """An address to listen on must be one of this machine's, or livekit-sip exits with a bind error."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as error:
            if error.errno == errno.EADDRNOTAVAIL:
                raise StackError(
                    f"SIP_LISTEN_IP={address} is not an address of this machine (`ip -brief address` lists them); "
                    "behind 1:1 NAT listen on the private address and put the public one in SIP_PUBLIC_IP") from None
            raise


def _check_tls(settings: Settings) -> None:
    if not settings.sip_tls_cert or not settings.sip_tls_key:
        missing = "SIP_TLS_KEY" if settings.sip_tls_cert else "SIP_TLS_CERT"
        raise StackError(f"SIP over TLS needs both SIP_TLS_CERT and SIP_TLS_KEY; {missing} is empty: set it to the "
                         "PEM file's path (or empty both to turn TLS off)")
    for key, path, marker in (("SIP_TLS_CERT", settings.sip_tls_cert, "CERTIFICATE"),
                              ("SIP_TLS_KEY", settings.sip_tls_key, "PRIVATE KEY")):
        try:
            text = Path(path).read_text(errors="replace")
        except FileNotFoundError:
            raise StackError(f"{key}={path}: no such file; set the path of the PEM file") from None
        except OSError as error:
            raise StackError(f"{key}={path} cannot be read ({error.strerror}): livekit-sip must be able to read "
                             "it") from None
        if f"-----BEGIN {marker}" not in text and not (marker == "PRIVATE KEY" and "PRIVATE KEY-----" in text):
            raise StackError(f"{key}={path} is not a PEM {marker.lower()} (no '-----BEGIN {marker}' line)")


def livekit_sip_config(settings: Settings) -> dict:
    """The part of livekit-sip's config that says where it listens and what it advertises."""
    config: dict = {
        "sip_port": settings.sip_port,
        "listen_ip": settings.sip_listen_ip,
        "use_external_ip": False,  # true would ask a STUN server at start, which fails offline
        # Local-IP detection skips loopback ("no local interface found"), and a host behind 1:1 NAT must advertise
        # its public address, so the advertised address is always set.
        "nat_1_to_1_ip": settings.sip_advertised_ip,
        "hide_inbound_port": settings.sip_hides_inbound_port,
    }
    if settings.sip_hostname:
        config["sip_hostname"] = settings.sip_hostname
    if settings.sip_tls:
        config["tls"] = {
            "port": settings.sip_tls_port,
            "certs": [{"cert_file": str(Path(settings.sip_tls_cert).resolve()),
                       "key_file": str(Path(settings.sip_tls_key).resolve())}],
        }
    return config


def exposures(settings: Settings) -> list[Exposure]:
    """What livekit-sip opens beyond loopback, on which address. SIP binds SIP_LISTEN_IP (listed when that is not
    loopback); RTP and the health port bind every address whatever is set (livekit-sip offers no setting for them),
    so a firewall must keep them to the carrier and to this machine."""
    listen, advertised = settings.sip_listen_ip, settings.sip_advertised_ip
    via = f"advertised as {advertised}" if advertised != listen else ""
    start, end = settings.sip_rtp_ports
    found = []
    if settings.sip_exposed:
        found.append(Exposure("SIP", "udp+tcp", f"{listen}:{settings.sip_port}", via))
        if settings.sip_tls:
            found.append(Exposure("SIP over TLS", "tcp", f"{listen}:{settings.sip_tls_port}", via))
    found.append(Exposure("RTP", "udp", f"{ANY_ADDRESS}:{start}-{end}",
                          "livekit-sip binds every address" + (f"; {via}" if via else "")))
    found.append(Exposure("health", "tcp", f"{ANY_ADDRESS}:{settings.sip_health_port}",
                          "livekit-sip binds every address; keep it firewalled"))
    return found


def sip_uri(settings: Settings) -> str:
    """Where a carrier sends calls: the advertised address, with TLS when it is on."""
    if settings.sip_tls:
        return f"sip:{settings.sip_hostname or settings.sip_advertised_ip}:{settings.sip_tls_port};transport=tls"
    return f"sip:{settings.sip_advertised_ip}:{settings.sip_port}"

