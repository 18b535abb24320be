"""The malformed-SIP prober (bench/sip_probe.py) against a stand-in UAS on 127.0.0.1: the corpus loads and fills into
SIP messages, answers are matched to their transactions, and each outcome gets the right verdict."""

from __future__ import annotations

import socket
import threading

import pytest

from bench.sip_probe import UNEXPECTED, CorpusEntry, Placeholders, SipSocket, headers_of, load_corpus, run_entry

pytestmark = pytest.mark.unit


class StandInServer:
    """Answers every request with `status` (nothing for None), echoing its Via, CSeq and Call-ID."""

    def __init__(self, status: str | None):
        self.status, self.received = status, []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.target = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                data, sender = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.received.append(data)
            first, headers = headers_of(data)
            if self.status and not first.startswith(("ACK", "SIP/")):
                answer = (f"SIP/2.0 {self.status} Whatever\r\nVia: {headers.get('via', '')}\r\n"
                          f"From: {headers.get('from', '')}\r\nTo: {headers.get('to', '')};tag=uas\r\n"
                          f"Call-ID: {headers.get('call-id', '')}\r\nCSeq: {headers.get('cseq', '')}\r\n"
                          "Content-Length: 0\r\n\r\n")
                self.sock.sendto(answer.encode(), sender)

    def stop(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


def entry(expect: str, tolerated: str = "", deviates: str = "") -> CorpusEntry:
    message = (b"OPTIONS sip:{number}@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {source}:{port};branch={branch}\r\n"
               b"From: <sip:a@{source}>;tag={tag}\r\nTo: <sip:{number}@{target}>\r\nCall-ID: {call_id}\r\n"
               b"CSeq: 1 OPTIONS\r\nContent-Length: {content_length}\r\n\r\n")
    return CorpusEntry("probe", "what", "RFC 3261", [message], [{expect}], [set(filter(None, [tolerated]))],
                       [set(filter(None, [deviates]))], wait=0.5)


@pytest.mark.parametrize("status, wanted", [("400", "as RFC"), ("200", UNEXPECTED), (None, "tolerated"),
                                            ("501", "known deviation")])
def test_each_answer_gets_its_verdict(status, wanted):
    server = StandInServer(status)
    sip = SipSocket("127.0.0.1", server.target)
    try:
        result = run_entry(entry("400", tolerated="drop", deviates="501"), sip, "+15550100")
    finally:
        sip.close()
        server.stop()
    assert result.messages[0].verdict == wanted, result.happened
    assert result.messages[0].outcome == (status or "drop")
    assert result.expected == (wanted != UNEXPECTED)


def test_the_corpus_fills_into_messages_with_true_content_lengths():
    corpus = load_corpus()
    assert len(corpus) >= 20
    sip = SipSocket("127.0.0.1", "127.0.0.1:5060")  # nothing is sent
    try:
        for item in corpus:
            if item.raw:
                continue
            fill = Placeholders(sip, "+15550100")
            for template in item.messages:
                message = fill.fill(template)
                assert b"{" not in message.split(b"\r\n\r\n")[0].replace(b"{sdp}", b""), item.name
                body = message.partition(b"\r\n\r\n")[2]
                if b"{content_length}" in template:
                    assert headers_of(message)[1]["content-length"] == str(len(body)), item.name
    finally:
        sip.close()
