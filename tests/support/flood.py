"""A bounded INVITE flood from one source, as a scanner or a toll-fraud script sends: `count` INVITEs spread over
`seconds`, each a new call, to one SIP address; then it listens a moment and reports what came back.

    python -m tests.support.flood --source 10.99.0.66 --target 10.99.0.1:5060 --number +15550200 \
        --count 200 --seconds 10

Used only by the carrier tests, inside their own network namespaces; the count and the duration bound it.
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import time
from collections import Counter

MAX_COUNT = 1000
MAX_SECONDS = 30.0


def invite(source: str, port: int, target: str, number: str, serial: int) -> bytes:
    call_id = secrets.token_hex(8)
    branch = "z9hG4bK" + secrets.token_hex(6)
    sdp = (f"v=0\r\no=- {serial} 1 IN IP4 {source}\r\ns=-\r\nc=IN IP4 {source}\r\nt=0 0\r\n"
           f"m=audio {40000 + serial % 1000 * 2} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    return (f"INVITE sip:{number}@{target} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {source}:{port};branch={branch};rport\r\n"
            f"From: <sip:+1555999{serial:04d}@{source}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{number}@{target}>\r\n"
            f"Call-ID: {call_id}@{source}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:+1555999{serial:04d}@{source}:{port}>\r\nMax-Forwards: 70\r\n"
            "User-Agent: friendly-scanner\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}").encode()


def flood(source: str, target: str, number: str, count: int, seconds: float, listen: float = 2.0) -> dict:
    count, seconds = min(count, MAX_COUNT), min(seconds, MAX_SECONDS)
    host, _, port = target.rpartition(":")
    replies: Counter[str] = Counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.setblocking(False)
        local_port = sock.getsockname()[1]
        started = time.monotonic()
        for serial in range(count):
            # Evenly spread: the n-th INVITE leaves at n/count of the duration.
            while (wait := started + serial * seconds / count - time.monotonic()) > 0:
                _drain(sock, replies)
                time.sleep(min(wait, 0.005))
            sock.sendto(invite(source, local_port, target, number, serial), (host, int(port)))
        sent_in = time.monotonic() - started
        deadline = time.monotonic() + listen
        while time.monotonic() < deadline:
            _drain(sock, replies)
            time.sleep(0.01)
    return {"sent": count, "seconds": round(sent_in, 2), "replies": dict(replies)}


def _drain(sock: socket.socket, replies: Counter) -> None:
    while True:
        try:
            data = sock.recv(65535)
        except BlockingIOError:
            return
        status = data.split(b"\r\n", 1)[0].decode(errors="replace")
        replies[status.split(" ", 2)[1] if status.startswith("SIP/2.0 ") else "request"] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True, help="host:port")
    parser.add_argument("--number", required=True)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(flood(args.source, args.target, args.number, args.count, args.seconds)))


if __name__ == "__main__":
    main()
