"""The phone line's settings without any server: what livekit-sip is told, what `status` calls exposed, and the one
line each bad value gets; the open-trunk refusal and the carrier presets of `sip setup`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from sip import carriers, provisioning
from stack import phone_line
from stack.errors import StackError
from stack.settings import REPO_ROOT, Settings, SettingsError

pytestmark = pytest.mark.unit


def settings(tmp_path, **values: str) -> Settings:
    return Settings.of(**values)


def test_the_default_line_is_loopback_only(tmp_path):
    line = settings(tmp_path)
    phone_line.check(line)
    config = phone_line.livekit_sip_config(line)
    assert config["listen_ip"] == config["nat_1_to_1_ip"] == "127.0.0.1"
    assert config["hide_inbound_port"] is False and "tls" not in config
    assert not line.sip_exposed
    exposed = [e.what for e in phone_line.exposures(line)]
    assert "SIP" not in exposed and "RTP" in exposed  # RTP binds every address whatever is set


def test_a_public_line_behind_nat_advertises_its_public_address(tmp_path):
    line = settings(tmp_path, SIP_LISTEN_IP="0.0.0.0", SIP_PUBLIC_IP="203.0.113.10")
    phone_line.check(line)
    config = phone_line.livekit_sip_config(line)
    assert config["listen_ip"] == "0.0.0.0" and config["nat_1_to_1_ip"] == "203.0.113.10"
    assert config["hide_inbound_port"] is True
    assert phone_line.sip_uri(line) == "sip:203.0.113.10:5060"
    assert "SIP          udp+tcp  0.0.0.0:5060  (advertised as 203.0.113.10)" in [
        e.describe() for e in phone_line.exposures(line)]


def test_tls_needs_both_files_and_real_pem(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n")
    line = settings(tmp_path, SIP_LISTEN_IP="0.0.0.0", SIP_PUBLIC_IP="203.0.113.10", SIP_TLS_CERT=str(cert),
                    SIP_TLS_KEY=str(key))
    phone_line.check(line)
    assert phone_line.livekit_sip_config(line)["tls"] == {
        "port": 5061, "certs": [{"cert_file": str(cert), "key_file": str(key)}]}
    assert phone_line.sip_uri(line) == "sip:203.0.113.10:5061;transport=tls"
    named = settings(tmp_path, SIP_LISTEN_IP="0.0.0.0", SIP_PUBLIC_IP="203.0.113.10", SIP_TLS_CERT=str(cert),
                     SIP_TLS_KEY=str(key), SIP_HOSTNAME="sip.example.com")
    phone_line.check(named)
    assert phone_line.sip_uri(named) == "sip:sip.example.com:5061;transport=tls"
    assert phone_line.livekit_sip_config(named)["sip_hostname"] == "sip.example.com"
    with pytest.raises(StackError, match="SIP_TLS_KEY is empty"):
        phone_line.check(settings(tmp_path, SIP_TLS_CERT=str(cert)))
    with pytest.raises(StackError, match="no such file"):
        phone_line.check(settings(tmp_path, SIP_TLS_CERT=str(tmp_path / "nope.pem"), SIP_TLS_KEY=str(key)))
    with pytest.raises(StackError, match="not a PEM certificate"):
        phone_line.check(settings(tmp_path, SIP_TLS_CERT=str(key), SIP_TLS_KEY=str(key)))


@pytest.mark.parametrize(("values", "words"), [
    ({"SIP_LISTEN_IP": "sip.example.com"}, "SIP_LISTEN_IP=sip.example.com in the environment is not valid: an IPv4"),
    ({"SIP_LISTEN_IP": "0.0.0.0"}, "SIP_LISTEN_IP=0.0.0.0 needs SIP_PUBLIC_IP"),
    ({"SIP_PUBLIC_IP": "203.0.113.10"}, "no carrier can reach"),
    ({"SIP_LISTEN_IP": "0.0.0.0", "SIP_PUBLIC_IP": "0.0.0.0"}, "cannot be advertised"),
    ({"SIP_LISTEN_IP": "198.51.100.77"}, "is not an address of this machine"),
    ({"SIP_RTP_PORTS": "5000-5100"}, "overlap"),
    ({"SIP_HOSTNAME": "sips://sip.example.com:5061"}, "is not a DNS name"),
    ({"SIP_HIDE_INBOUND_PORT": "maybe"}, "SIP_HIDE_INBOUND_PORT=maybe in the environment is not valid: true or"),
    ({"SIP_MEDIA_ENCRYPTION": "sometimes"}, "SIP_MEDIA_ENCRYPTION=sometimes in the environment is not valid: one of"),
    ({"SIP_MAX_CALL_DURATION": "-5"}, "SIP_MAX_CALL_DURATION=-5 in the environment is not valid: a whole number"),
])
def test_each_bad_value_gets_one_line_naming_its_key(tmp_path, values, words):
    with pytest.raises((StackError, SettingsError), match=re.escape(words)) as refused:
        phone_line.check(settings(tmp_path, **values))
    assert "\n" not in str(refused.value)


def test_an_open_trunk_is_refused_only_where_sip_is_reachable():
    open_trunk = provisioning.SipConfig(numbers=["+15550100"])
    open_trunk.validate()  # loopback: fine, as for `make run`
    with pytest.raises(StackError, match=re.escape("refusing an open trunk: SIP is reachable at sip:203.0.113.10")):
        open_trunk.validate("sip:203.0.113.10:5060")
    provisioning.SipConfig(numbers=["+15550100"], allow_open_trunk=True).validate("sip:203.0.113.10:5060")
    provisioning.SipConfig(numbers=["+15550100"], allowed_addresses=["54.172.60.0/30"]).validate("sip:x:5060")
    provisioning.SipConfig(numbers=["+15550100"], auth_username="u", auth_password="p").validate("sip:x:5060")


def test_media_encryption_reaches_the_trunk():
    trunk = provisioning.SipConfig.from_settings(Settings.of(SIP_MEDIA_ENCRYPTION="require")).trunk()
    assert trunk.media_encryption == provisioning.MEDIA_ENCRYPTION["require"]
    with pytest.raises(StackError, match="SIP_MEDIA_ENCRYPTION='sometimes' is not one of disable, allow, require"):
        provisioning.SipConfig(numbers=["+15550100"], media_encryption="sometimes").validate()


def test_carrier_presets_name_their_addresses_and_the_carrier_side_settings():
    twilio = carriers.carrier_side_settings(carriers.TWILIO, "203.0.113.10", 5060, "udp", ["+15550100"], "",
                                            "disable", (10000, 10100))
    assert "  Origination > Origination SIP URI: sip:203.0.113.10:5060  (priority 10, weight 10)" in twilio
    assert any("54.172.60.0/30" in line for line in twilio)
    assert any("168.86.128.0/18" in line for line in twilio)
    telnyx = carriers.carrier_side_settings(carriers.TELNYX, "203.0.113.10", 5061, "tls", ["+15550100"], "",
                                            "allow", (10000, 10100))
    assert "  Inbound > SIP transport protocol: TLS" in telnyx and "  Inbound > Encrypted media: SRTP" in telnyx
    for carrier in (carriers.TWILIO, carriers.TELNYX):
        for network in carrier.signalling:
            provisioning.SipConfig(numbers=["+15550100"], allowed_addresses=[network]).validate()


def test_sip_setup_refuses_before_contacting_any_server(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SIP_LISTEN_IP=0.0.0.0\nSIP_PUBLIC_IP=203.0.113.10\nLIVEKIT_PORT=1\n"
                        "LIVEKIT_API_KEY=key\nLIVEKIT_API_SECRET=secret-secret-secret-secret-secret\n")
    refused = subprocess.run([sys.executable, str(REPO_ROOT / "cli.py"), "sip", "setup", "--number", "+15550100"],
                             env={"PHONE_ENV_FILE": str(env_file), "PATH": "/usr/bin:/bin", "COLUMNS": "300"},
                             capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: refusing an open trunk"), refused.stderr
    assert "--allow-open-trunk" in refused.stderr and "cannot reach" not in refused.stderr
    assert "SIP_NUMBERS" not in env_file.read_text()  # a refused setup saves nothing
