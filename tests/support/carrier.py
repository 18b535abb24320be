"""A carrier simulated for real: a network namespace of its own (the carrier's network, 10.99.0.0/24) joined to the
test namespace by a veth pair, Kamailio in it as the carrier's SIP proxy, and helpers that run callers, scanners and
floods from there.

    10.99.0.1   our side of the pair: livekit-sip listens here (SIP_LISTEN_IP), not on loopback
    10.99.0.2   the carrier's SIP proxy (Kamailio): the trunk's allowed address
    10.99.0.3   the caller's phone (its RTP reaches us from here, as a carrier's media servers' would)
    10.99.0.66  a stranger on the carrier's network: a scanner, or a fraudster who learnt the trunk's password

Everything here runs inside the test namespace that scripts/netns.sh makes (`make test`); `in_test_namespace()`
refuses to touch the machine's own network.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

OUR_ADDRESS = "10.99.0.1"
CARRIER_PROXY = "10.99.0.2"
CALLER_PHONE = "10.99.0.3"
STRANGER = "10.99.0.66"
PREFIX_LENGTH = 24
TEMPLATE = Path(__file__).resolve().parents[1] / "data" / "carrier" / "kamailio.cfg"


def in_test_namespace() -> bool:
    """Whether this process runs in scripts/netns.sh's namespace (its veth pair phone0/phone1 is the mark), and not
    in the machine's own network namespace."""
    try:
        socket.if_nametoindex("phone0")  # asks the kernel about this namespace (/sys may show another's)
    except OSError:
        return False
    try:
        return os.stat("/proc/self/ns/net").st_ino != os.stat("/proc/1/ns/net").st_ino
    except OSError:  # pid 1's namespace may be hidden from us: the veth pair is mark enough
        return True


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")


class CarrierNetwork:
    """The carrier's network namespace, held open by a sleeping process; `command()` runs a program inside it."""

    def __init__(self, link: str = "carrier0"):
        self.link = link
        self.holder: subprocess.Popen | None = None

    def start(self) -> CarrierNetwork:
        if not in_test_namespace():
            raise RuntimeError("the carrier network is made only inside the test namespace: run the tests through "
                               "scripts/netns.sh (make test)")
        self.holder = subprocess.Popen(["unshare", "-n", "sleep", "infinity"])
        peer = f"{self.link}p"
        _run("ip", "link", "add", self.link, "type", "veth", "peer", "name", peer)
        _run("ip", "addr", "add", f"{OUR_ADDRESS}/{PREFIX_LENGTH}", "dev", self.link)
        _run("ip", "link", "set", self.link, "up")
        # The peer end moves into the carrier's namespace once that namespace exists.
        deadline = time.monotonic() + 5
        while True:
            try:
                _run("ip", "link", "set", peer, "netns", str(self.holder.pid))
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        inside = self.inside
        _run(*inside, "ip", "link", "set", "lo", "up")
        for address in (CARRIER_PROXY, CALLER_PHONE, STRANGER):
            _run(*inside, "ip", "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", peer)
        _run(*inside, "ip", "link", "set", peer, "up")
        # Both ends up and addresses settled (no duplicate-address wait on IPv4), the pair passes packets.
        return self

    @property
    def inside(self) -> tuple[str, ...]:
        """The prefix that runs a command in the carrier's namespace."""
        assert self.holder is not None, "the carrier network is not started"
        return ("nsenter", "-t", str(self.holder.pid), "-n")

    def stop(self) -> None:
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait(5)
            self.holder = None
        # The pair goes with the namespace; remove our end in case it did not.
        subprocess.run(["ip", "link", "del", self.link], capture_output=True, check=False)


@dataclass
class Trunk:
    """How the carrier reaches our trunk: livekit-sip's address, port and transport, and the trunk's credentials."""
    host: str
    port: int
    username: str
    password: str
    transport: str = "udp"  # or tls

    @property
    def uri(self) -> str:
        return f"sip:{self.host}:{self.port}" + (";transport=tls" if self.transport == "tls" else "")


@dataclass
class Kamailio:
    """The carrier's SIP proxy, listening on `listen` in the carrier's namespace."""
    network: CarrierNetwork
    folder: Path
    trunk: Trunk
    listen: str = CARRIER_PROXY
    tls_files: dict[str, str] = field(default_factory=dict)  # ca, certificate, key: for a TLS trunk
    process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / "kamailio.log"

    def config(self) -> str:
        text = TEMPLATE.read_text()
        tls_core = tls_module = ""
        if self.trunk.transport == "tls":
            tls_core = f"enable_tls=yes\nlisten=tls:{self.listen}:5061"
            tls_config = self.folder / "tls.cfg"
            tls_config.write_text(
                "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"
                f"certificate = {self.tls_files['certificate']}\nprivate_key = {self.tls_files['key']}\n\n"
                # As a carrier would: the trunk's certificate must be valid for its address, signed by a known CA.
                "[client:default]\nmethod = TLSv1.2+\nverify_certificate = yes\nrequire_certificate = yes\n"
                f"ca_list = {self.tls_files['ca']}\n")
            tls_module = f'loadmodule "tls.so"\nmodparam("tls", "config", "{tls_config}")'
        values = {
            "LISTEN": self.listen, "TLS_CORE": tls_core, "TLS_MODULE": tls_module, "TRUNK": self.trunk.uri,
            "TRUNK_HOSTPORT": f"{self.trunk.host}:{self.trunk.port}", "AUTH_USER": self.trunk.username,
            "AUTH_PASSWORD": self.trunk.password,
        }
        for key, value in values.items():
            text = text.replace(f"@@{key}@@", value)
        return text

    def start(self) -> Kamailio:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "kamailio.cfg"
        config.write_text(self.config())
        kamailio = shutil.which("kamailio") or "/usr/sbin/kamailio"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*self.network.inside, kamailio, "-f", str(config), "-DD", "-E", "-m", "48", "-M", "8",
                 "-Y", str(self.folder), "-P", str(self.folder / "kamailio.pid")],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Kamailio did not start; its log:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        return self

    def _listening(self) -> bool:
        probe = subprocess.run([*self.network.inside, "ss", "-Hlun", f"src {self.listen}:5060"],
                               capture_output=True, text=True, check=False)
        return bool(probe.stdout.strip())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        self.process = None


def make_test_certificates(folder: Path) -> dict[str, str]:
    """A test CA, and certificates it signs for livekit-sip (10.99.0.1) and for the carrier's proxy (10.99.0.2)."""
    folder.mkdir(parents=True, exist_ok=True)
    openssl = shutil.which("openssl") or "openssl"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_key, ca = folder / "ca.key", folder / "ca.pem"
    _run(openssl, "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
         "-subj", "/CN=Simulated carrier test CA")
    files = {"ca": str(ca)}
    for name, address in (("trunk", OUR_ADDRESS), ("carrier", CARRIER_PROXY)):
        key, request, certificate = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
        extensions = folder / f"{name}.ext"
        extensions.write_text(f"subjectAltName=IP:{address}\nextendedKeyUsage=serverAuth,clientAuth\n")
        _run(openssl, "req", *ec, "-keyout", str(key), "-out", str(request), "-subj", f"/CN={address}")
        _run(openssl, "x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(certificate), "-days", "2", "-extfile", str(extensions))
        files[f"{name}_certificate"], files[f"{name}_key"] = str(certificate), str(key)
    return files


# --- a rehearsal by hand (docs/deploy.md): the carrier's network held open, and calls through Kamailio ------------
def _state_file() -> Path:
    run_dir = Path(os.environ.get("PHONE_RUN_DIR") or Path(__file__).resolve().parents[2] / ".run")
    return run_dir / "carrier-network.json"


def _hold_network() -> None:
    network = CarrierNetwork().start()
    state = _state_file()
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"pid": network.holder.pid}))
    print(f"The carrier's network is up: this side {OUR_ADDRESS}, the carrier's proxy {CARRIER_PROXY}, its phones "
          f"{CALLER_PHONE}. Ctrl-C (or kill {os.getpid()}) takes it down.", flush=True)
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        network.stop()
        state.unlink(missing_ok=True)


def _call(args) -> int:
    from tools.softphone import CallOptions, place_call_in_subprocess

    try:
        pid = json.loads(_state_file().read_text())["pid"]
    except (FileNotFoundError, ValueError, KeyError):
        print("error: no carrier network: start it first with `python -m tests.support.carrier network &`",
              file=sys.stderr)
        return 2
    network = CarrierNetwork()
    network.holder = type("Holder", (), {"pid": pid})()
    folder = Path(tempfile.mkdtemp(prefix="carrier-"))
    tls_files = {}
    if args.tls:
        if not args.ca:
            print("error: --tls needs --ca, the CA file that signed livekit-sip's certificate", file=sys.stderr)
            return 2
        tls_files = make_test_certificates(folder / "certificates")
        tls_files = {"ca": args.ca, "certificate": tls_files["carrier_certificate"], "key": tls_files["carrier_key"]}
    trunk = Trunk(args.trunk, args.port or (5061 if args.tls else 5060), args.username, args.password,
                  "tls" if args.tls else "udp")
    kamailio = Kamailio(network, folder, trunk, tls_files=tls_files).start()
    try:
        options = CallOptions(server=f"{CARRIER_PROXY}:5060", number=args.number, caller_id=args.caller,
                              bind_address=CALLER_PHONE, say=list(args.say or []), transcribe=True,
                              timeout=args.timeout, hangup_after=1.0)
        result = place_call_in_subprocess(options, timeout=600, prefix=network.inside)
        print(f"through Kamailio at {CARRIER_PROXY} to {trunk.uri}")
        print("\n".join(result.timeline()))
        return 0 if result.ok else 1
    finally:
        kamailio.stop()
        print(f"Kamailio's log: {kamailio.log_path}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.support.carrier",
                                     description="A simulated carrier, by hand (inside scripts/netns.sh).")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("network", help="make the carrier's network and hold it until Ctrl-C")
    certificates = commands.add_parser("certificates", help="a test CA and a certificate for livekit-sip's address")
    certificates.add_argument("folder", type=Path)
    call = commands.add_parser("call", help="call the number through the carrier's proxy (Kamailio)")
    call.add_argument("--number", default="+15550100")
    call.add_argument("--caller", default="+15557000001", help="the caller's number (From)")
    call.add_argument("--username", default="", help="the trunk's digest username")
    call.add_argument("--password", default="", help="the trunk's digest password")
    call.add_argument("--trunk", default=OUR_ADDRESS, help="livekit-sip's address")
    call.add_argument("--port", type=int, default=0, help="livekit-sip's port (default 5060, 5061 with --tls)")
    call.add_argument("--tls", action="store_true", help="over TLS to livekit-sip")
    call.add_argument("--ca", default="", help="with --tls: the CA that signed livekit-sip's certificate")
    call.add_argument("--say", action="append", help="what the caller says (repeat for more turns)")
    call.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args(argv)
    if args.command == "certificates":
        files = make_test_certificates(args.folder)
        print(f"SIP_TLS_CERT={files['trunk_certificate']}\nSIP_TLS_KEY={files['trunk_key']}\n"
              f"CA (for `call --tls --ca`): {files['ca']}")
        return 0
    if not in_test_namespace():
        print("error: run this inside a namespace of its own: `scripts/netns.sh bash`, then this command",
              file=sys.stderr)
        return 2
    if args.command == "network":
        _hold_network()
        return 0
    return _call(args)


if __name__ == "__main__":
    sys.exit(main())
