"""Malformed and hostile SIP, sent over raw UDP from files (tests/data/sip_corpus/*.sip), and what came back.

Each corpus file is a few `# key: value` lines, then one or more messages separated by a line `=== next ===`:

    # what: an INVITE whose Content-Length is larger than its body
    # rfc: RFC 3261 18.3: a request whose UDP packet ends before its body SHOULD get a 400
    # expect: 400              the outcomes RFC 3261 asks for ('drop': no answer at all; '1xx': only provisionals)
    # tolerated: drop          outcomes the RFC allows too, or that fail closed (no answer instead of a 400)
    # deviates: 1xx            what livekit-sip is known to do instead of the RFC's answer (reported as such)
    # expect-2: 200            for the second message of the file (and so on)
    # why: ...                 a note for the reader on a deviation (not read by the probe)
    # wait: 2                  seconds to listen after each message (default 1.5)
    # raw: yes                 the message is sent byte for byte (no placeholders, no CRLF line endings)
    INVITE sip:{number}@{target} SIP/2.0
    ...

Placeholders: {target} (host:port of livekit-sip), {source} and {port} (our socket), {number} (the number the
trunk answers), {call_id}, {branch}, {tag} (fresh per file; {branch2}.. for more transactions), {to_tag} (the tag
of the last answer that had one), {content_length} (the body's length in bytes), {sdp} (a valid PCMU offer),
{pad:N} (N bytes of filler), {headers:N} (N filler header lines). Lines end in CRLF.

After its messages, each file's calls are cleaned up as a phone would: an INVITE answered 200 gets ACK and BYE,
one still ringing gets CANCEL (and its 487 an ACK). Every wait is bounded, and only the given target is sent to.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "sip_corpus"
SEPARATOR = re.compile(rb"^=== next ===\r?\n", re.M)
DEFAULT_WAIT_S = 1.5
MAX_WAIT_S = 60.0
FINAL_WAIT_S = 3.0  # cleanup: how long to wait for the answers to our ACK/BYE/CANCEL


UNEXPECTED = "UNEXPECTED"
VERDICTS = ("as RFC", "tolerated", "known deviation", UNEXPECTED)  # best first


@dataclass
class CorpusEntry:
    name: str
    what: str
    rfc: str
    messages: list[bytes]
    expect: list[set[str]]  # per message
    tolerated: list[set[str]]
    deviates: list[set[str]]
    wait: float = DEFAULT_WAIT_S
    raw: bool = False


@dataclass
class MessageOutcome:
    sent: str  # the first line, cut short
    responses: list[str]  # status codes in the order they came
    outcome: str  # the final code, '1xx' (provisionals only) or 'drop'
    verdict: str  # 'as RFC', 'tolerated', 'known deviation' or 'UNEXPECTED'


@dataclass
class EntryOutcome:
    entry: CorpusEntry
    messages: list[MessageOutcome] = field(default_factory=list)
    cleanup: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        verdicts = {m.verdict for m in self.messages}
        return next((v for v in VERDICTS[::-1] if v in verdicts), "as RFC")

    @property
    def expected(self) -> bool:
        """Every message got the RFC's answer, a tolerated one or livekit-sip's known deviation."""
        return all(m.verdict != UNEXPECTED for m in self.messages)

    @property
    def happened(self) -> str:
        return "; ".join(f"{m.sent.split(' ')[0]} -> {_runs(m.responses) or 'no answer'}" for m in self.messages)


def _runs(codes: list[str]) -> str:
    """'100, 180 x12, 200': repeats (a 180 resent every second while it rings) counted, not listed."""
    runs: list[list] = []
    for code in codes:
        if runs and runs[-1][0] == code:
            runs[-1][1] += 1
        else:
            runs.append([code, 1])
    return ", ".join(code if n == 1 else f"{code} x{n}" for code, n in runs)


def load_corpus(folder: Path = CORPUS) -> list[CorpusEntry]:
    entries = []
    for path in sorted(folder.glob("*.sip")):
        data = path.read_bytes()
        meta: dict[str, str] = {}
        while data.startswith(b"#"):
            line, _, data = data.partition(b"\n")
            key, _, value = line[1:].decode().partition(":")
            meta[key.strip()] = value.strip()
        raw = meta.get("raw") == "yes"
        messages = SEPARATOR.split(data)
        if not raw:
            messages = [m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for m in messages]
        missing = [key for key in ("what", "rfc", "expect") if key not in meta]
        if missing:
            raise ValueError(f"{path}: no {', '.join(missing)} line at the top (see bench/sip_probe.py)")
        expect = [_outcomes(meta.get("expect" if n == 0 else f"expect-{n + 1}", "")) for n in range(len(messages))]
        tolerated, deviates = ([_outcomes(meta.get(key if n == 0 else f"{key}-{n + 1}", ""))
                                for n in range(len(messages))] for key in ("tolerated", "deviates"))
        if any(not wanted for wanted in expect):
            raise ValueError(f"{path}: each of its {len(messages)} messages needs an expect line")
        entries.append(CorpusEntry(path.stem, meta["what"], meta["rfc"], messages, expect, tolerated, deviates,
                                   min(float(meta.get("wait", DEFAULT_WAIT_S)), MAX_WAIT_S), raw))
    return entries


def _outcomes(text: str) -> set[str]:
    return {part.strip() for part in text.split("|") if part.strip()}


class SipSocket:
    """One UDP socket on `source`, sending only to `target`; answers parsed just enough to route them."""

    def __init__(self, source: str, target: str):
        host, _, port = target.rpartition(":")
        self.target, self.address = target, (host, int(port))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.source, self.port = source, self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.address)

    def receive(self, until: float, stop=None) -> list[bytes]:
        """Datagrams until `until` (monotonic), or until `stop(datagrams)` says enough."""
        got: list[bytes] = []
        while (left := until - time.monotonic()) > 0:
            self.sock.settimeout(min(left, 0.2))
            try:
                data, sender = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if sender == self.address:
                got.append(data)
                if stop is not None and stop(got):
                    break
        return got


def headers_of(message: bytes) -> tuple[str, dict[str, str]]:
    """(first line, headers by lower-case name: the first value of each); compact forms expanded."""
    compact = {"i": "call-id", "f": "from", "t": "to", "v": "via", "l": "content-length", "m": "contact"}
    head = message.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
    found: dict[str, str] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = compact.get(name.strip().lower(), name.strip().lower())
        found.setdefault(name, value.strip())
    return head[0], found


def branch_of(via: str) -> str:
    match = re.search(r"branch=([^;,\s]+)", via)
    return match.group(1) if match else ""


def transaction_key(headers: dict[str, str]) -> tuple[str, str]:
    """(Via branch, CSeq method): what a request and its responses share."""
    return branch_of(headers.get("via", "")), headers.get("cseq", "").split(" ")[-1].upper()


def response_key(message: bytes) -> tuple[str, str] | None:
    """The transaction key of a response, or None for a request."""
    first, headers = headers_of(message)
    return transaction_key(headers) if first.startswith("SIP/2.0 ") else None


def status_of(message: bytes) -> str:
    return headers_of(message)[0].split(" ")[1]


def is_final_for(message: bytes, key: tuple[str, str]) -> bool:
    """Whether `message` is a final (non-1xx) response of the transaction `key`."""
    return response_key(message) == key and not status_of(message).startswith("1")


class Placeholders:
    def __init__(self, sip: SipSocket, number: str):
        self.sip, self.number = sip, number
        self.values = {"target": sip.target, "source": sip.source, "port": str(sip.port), "number": number,
                       "call_id": secrets.token_hex(10), "tag": secrets.token_hex(4), "to_tag": ""}
        for n in ("", "2", "3", "4"):
            self.values[f"branch{n}"] = "z9hG4bK" + secrets.token_hex(8)

    def fill(self, template: bytes) -> bytes:
        text = template.decode("latin-1")
        text = re.sub(r"\{pad:(\d+)\}", lambda m: "a" * min(int(m.group(1)), 65000), text)
        text = re.sub(r"\{headers:(\d+)\}", lambda m: "\r\n".join(
            f"X-Filler-{i}: {i}" for i in range(min(int(m.group(1)), 5000))), text)
        sdp = (f"v=0\r\no=- 1 1 IN IP4 {self.sip.source}\r\ns=-\r\nc=IN IP4 {self.sip.source}\r\nt=0 0\r\n"
               f"m=audio {self.sip.port + 2} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
        text = text.replace("{sdp}", sdp)
        for key, value in self.values.items():
            text = text.replace("{" + key + "}", value)
        head, sep, body = text.partition("\r\n\r\n")
        text = head.replace("{content_length}", str(len(body.encode("latin-1")))) + sep + body
        return text.encode("latin-1")


def run_entry(entry: CorpusEntry, sip: SipSocket, number: str) -> EntryOutcome:
    fill = Placeholders(sip, number)
    result = EntryOutcome(entry)
    sent: list[tuple[str, tuple[str, str]]] = []  # (first line, (Via branch, CSeq method)) of each message
    invites: list[bytes] = []  # INVITEs sent, for the cleanup
    answers: list[bytes] = []
    for template in entry.messages:
        message = template if entry.raw else fill.fill(template)
        first, headers = headers_of(message)
        key = transaction_key(headers)
        sip.send(message)
        sent.append((first, key))
        if first.startswith("INVITE"):
            invites.append(message)

        got = sip.receive(time.monotonic() + entry.wait, lambda got, key=key: any(is_final_for(m, key) for m in got))
        answers += got
        for answer in got:  # the dialog's tag, for the messages that follow in it
            if response_key(answer) == key and (tag := re.search(r";tag=([^;>\s]+)",
                                                                  headers_of(answer)[1].get("to", ""))):
                fill.values["to_tag"] = tag.group(1)
    answers += sip.receive(time.monotonic() + 0.5)  # late answers (an INVITE's 487 after its CANCEL)
    for index, (first, key) in enumerate(sent):
        # Answers go to their transaction; a message without a Via branch gets whatever came back at all.
        codes = [status_of(m) for m in answers if (response_key(m) == key if key[0] else response_key(m))]
        finals = [c for c in codes if not c.startswith("1")]
        outcome = finals[-1] if finals else ("1xx" if codes else "drop")
        allowed = (entry.expect[index], entry.tolerated[index], entry.deviates[index])
        verdict = next((v for v, outcomes in zip(VERDICTS, allowed) if _matches(outcome, outcomes)), UNEXPECTED)
        shown = first if len(first) <= 60 else first[:57] + "..."
        result.messages.append(MessageOutcome(shown.encode("unicode_escape").decode(), codes, outcome, verdict))
    result.cleanup = _clean_up(sip, invites, answers)
    return result


def _matches(outcome: str, allowed: set[str]) -> bool:
    return outcome in allowed or (outcome[:1] + "xx") in allowed


def _clean_up(sip: SipSocket, invites: list[bytes], answers: list[bytes]) -> list[str]:
    """Ends every call the file's INVITEs started: ACK+BYE an answered one, CANCEL (then ACK) a ringing one, ACK a
    refused one (its answer is resent until acknowledged, RFC 3261 17.1.1.3). A re-INVITE (its To has a tag) only
    gets its ACK: its dialog's BYE goes with the INVITE that made it."""
    answers = answers + sip.receive(time.monotonic() + 0.2)
    done = []
    for invite in sorted(invites, key=lambda m: ";tag=" not in headers_of(m)[1].get("to", "")):  # re-INVITEs first
        first, headers = headers_of(invite)
        key = transaction_key(headers)
        branch, seq = key[0], headers.get("cseq", "").partition(" ")[0]
        if not branch or " " not in first or not seq.isdigit():
            continue
        uri = first.split(" ")[1]
        mine = [m for m in answers if response_key(m) == key]
        codes = [status_of(m) for m in mine]
        finals = [m for m in mine if not status_of(m).startswith("1")]
        in_dialog = ";tag=" in headers.get("to", "")
        if finals:
            to = headers_of(finals[-1])[1].get("to", "") or headers.get("to", "")
            sip.send(_in_dialog("ACK", uri, headers, to, branch, f"{seq} ACK"))
            if status_of(finals[-1]).startswith("2") and not in_dialog:
                bye = "z9hG4bK" + secrets.token_hex(8)
                sip.send(_in_dialog("BYE", uri, headers, to, bye, f"{int(seq) + 10} BYE"))
                got = sip.receive(time.monotonic() + FINAL_WAIT_S,
                                  lambda g, bye=bye: any(response_key(m) == (bye, "BYE") for m in g))
                done.append("ACK+BYE -> " + (",".join(status_of(m) for m in got if response_key(m) == (bye, "BYE"))
                                             or "no answer"))
        elif codes and not in_dialog:
            sip.send(_cancel(uri, headers, branch))
            got = sip.receive(time.monotonic() + FINAL_WAIT_S, lambda g, key=key: any(is_final_for(m, key) for m in g))
            final = [m for m in got if is_final_for(m, key)]
            if final:
                to = headers_of(final[-1])[1].get("to", "") or headers.get("to", "")
                sip.send(_in_dialog("ACK", uri, headers, to, branch, f"{seq} ACK"))
            done.append("CANCEL -> " + (",".join(status_of(m) for m in got if not status_of(m).startswith("1"))
                                        or "no answer"))
    return done


def _in_dialog(method: str, uri: str, invite: dict[str, str], to: str, branch: str, cseq: str) -> bytes:
    via = re.sub(r"branch=[^;,\s]+", f"branch={branch}", invite.get("via", ""))
    return (f"{method} {uri} SIP/2.0\r\nVia: {via}\r\nFrom: {invite.get('from', '')}\r\nTo: {to}\r\n"
            f"Call-ID: {invite.get('call-id', '')}\r\nCSeq: {cseq}\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def _cancel(uri: str, invite: dict[str, str], branch: str) -> bytes:
    return (f"CANCEL {uri} SIP/2.0\r\nVia: {invite.get('via', '')}\r\nFrom: {invite.get('from', '')}\r\n"
            f"To: {invite.get('to', '')}\r\nCall-ID: {invite.get('call-id', '')}\r\n"
            f"CSeq: {invite.get('cseq', '1').split(' ')[0]} CANCEL\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def run_corpus(target: str, number: str, source: str = "127.0.0.1",
               entries: list[CorpusEntry] | None = None, progress=None) -> list[EntryOutcome]:
    """Each corpus file from a fresh socket (so that one file's late answers never count for another)."""
    results = []
    for entry in entries if entries is not None else load_corpus():
        sip = SipSocket(source, target)
        try:
            results.append(run_entry(entry, sip, number))
        finally:
            sip.close()
        if progress:
            progress(f"  {entry.name}: {results[-1].happened} ({results[-1].verdict})")
    return results
