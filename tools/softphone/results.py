"""What a call is asked to do (CallOptions) and what came of it (CallResult, one Turn per caller utterance): plain
data that crosses the process boundary as one JSON line, and the timeline `cli.py call` prints.

Timeline of a call (all in ms from the INVITE): 180 Ringing, 200 OK, first agent audio (the greeting), then for each
caller utterance the end of the caller's speech -> first agent audio (voice-to-voice as the caller hears it).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

# Received audio louder than this (RMS of a 20 ms frame, int16) counts as the agent speaking; about -40 dBFS.
DEFAULT_VOICE_THRESHOLD = 330.0


class SoftphoneError(Exception):
    """A call that could not be placed or went wrong; the message is one line for the user."""


KEYS_PREFIX = "keys:"


@dataclass
class CallOptions:
    server: str = "127.0.0.1:5060"
    number: str = "+15550100"
    caller_id: str = "+15550123"
    # Caller utterances: audio files (any rate; mixed to mono) and/or texts spoken with the local TTS, in this order.
    # A text "keys: 0" is a turn of keypad digits instead (RFC 4733), answered like speech.
    play: list[str] = field(default_factory=list)
    say: list[str] = field(default_factory=list)
    dtmf: str = ""
    record: str | None = None
    # Seconds to stay on the line after the last reply ended (0: hang up at once), unless the agent hangs up first.
    hangup_after: float = 0.0
    # Hang up this many seconds into the agent's reply to the last utterance (a caller who hangs up mid-answer).
    hangup_mid_reply: float | None = None
    # Bound on each wait: for an answer, for the greeting, for a reply to start.
    timeout: float = 30.0
    # The longest a single agent reply may last before we stop waiting for it to end.
    max_reply: float = 60.0
    # Silence that ends an agent reply.
    reply_silence: float = 1.0
    voice_threshold: float = DEFAULT_VOICE_THRESHOLD
    transcribe: bool = True
    # Codecs in order of preference; the first one the other side accepts is used.
    codecs: list[str] = field(default_factory=lambda: ["g722", "pcmu"])
    # Answer to a REFER: 202 accepts it (the softphone then leaves the call to the new party), >= 400 rejects it.
    refer_response: int = 202
    local_port: int = 0
    # The address the softphone's SIP and RTP use (a caller on another network binds that network's address).
    bind_address: str = "127.0.0.1"
    # SRTP (SDES): "" (plain RTP), "optional" (offered) or "mandatory".
    srtp: str = ""
    log_level: int = 0
    # Instead of dialling, wait on local_port for one call and: "answer" it (the utterances are then said first,
    # each answered by the other side: a person, or a voicemail greeting), reject it "busy" (486), "decline" it
    # (603), or "ring" (180) until the other side gives up. Empty: dial out.
    answer: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CallOptions:
        return cls(**json.loads(text))


@dataclass
class Turn:
    source: str
    speech_ms: float
    speech_end_ms: float | None = None
    reply_start_ms: float | None = None
    voice_to_voice_ms: float | None = None
    reply_end_ms: float | None = None
    reply_text: str | None = None


@dataclass
class CallResult:
    ok: bool = False
    error: str | None = None
    # time.monotonic() at the INVITE: CLOCK_MONOTONIC, one clock for every process on the machine, so that another
    # process can place this call's moments (all in ms from the INVITE) on its own timeline.
    started_at: float | None = None
    status_code: int | None = None
    reason: str | None = None
    codec: str | None = None
    ringing_ms: float | None = None
    answered_ms: float | None = None
    greeting_ms: float | None = None
    greeting_end_ms: float | None = None
    greeting_text: str | None = None
    turns: list[Turn] = field(default_factory=list)
    dtmf_sent: str = ""
    # "agent" (remote BYE), "caller" (we hung up), or None when the call never connected.
    hangup_by: str | None = None
    hangup_ms: float | None = None
    # When a final error response (486 Busy Here, say) ended a call that was never answered.
    rejected_ms: float | None = None
    # Who called (the From URI), when the softphone answered a call (CallOptions.answer), and how many calls it
    # rejected in the "busy" and "decline" modes.
    remote_uri: str | None = None
    rejected_calls: int = 0
    refer_to: str | None = None
    refer_ms: float | None = None
    # Final status of the call to the REFER target, when we accepted the REFER.
    refer_status: int | None = None
    rtp_packets_sent: int = 0
    rtp_packets_received: int = 0
    audio_sent_s: float = 0.0
    audio_received_s: float = 0.0
    recording: str | None = None
    # Where the greeting ("greeting") and each reply ("0", "1", ...) lie in the received audio: [first, last) samples.
    segments: dict[str, list[int]] = field(default_factory=dict)

    @property
    def agent_text(self) -> str:
        return " ".join(t for t in [self.greeting_text, *(turn.reply_text for turn in self.turns)] if t)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CallResult:
        data = json.loads(text)
        data["turns"] = [Turn(**turn) for turn in data.get("turns", [])]
        return cls(**data)

    def timeline(self) -> list[str]:
        """The human-readable timeline printed by `cli.py call`."""
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:7.0f} ms"

        lines = [f"INVITE           {ms(0.0)}"]
        if self.ringing_ms is not None:
            lines.append(f"180 Ringing      {ms(self.ringing_ms)}")
        if self.answered_ms is not None:
            lines.append(f"200 OK           {ms(self.answered_ms)}  codec {self.codec or '?'}")
        elif self.status_code:
            status = f"{self.status_code} {self.reason or ''}".strip()
            lines.append(f"{status:<17}{ms(self.rejected_ms)}")
        if self.greeting_ms is not None:
            lines.append(f"greeting starts  {ms(self.greeting_ms)}")
            if self.greeting_text is not None:
                lines.append(f'  agent: "{self.greeting_text}"')
        if self.dtmf_sent:
            lines.append(f"DTMF sent        {self.dtmf_sent}")
        for number, turn in enumerate(self.turns, 1):
            lines.append(f"turn {number}: caller speaks {turn.speech_ms / 1000:.1f} s ({turn.source}), "
                         f"speech ends at {ms(turn.speech_end_ms)}")
            if turn.voice_to_voice_ms is not None:
                lines.append(f"  voice-to-voice {turn.voice_to_voice_ms:7.0f} ms (first agent audio at "
                             f"{ms(turn.reply_start_ms)})")
            else:
                lines.append("  no reply from the agent")
            if turn.reply_text is not None:
                lines.append(f'  agent: "{turn.reply_text}"')
        if self.refer_to:
            lines.append(f"REFER            {ms(self.refer_ms)}  to {self.refer_to}"
                         + (f" (call to it ended {self.refer_status})" if self.refer_status else ""))
        if self.hangup_by:
            who = "the agent hung up (BYE)" if self.hangup_by == "agent" else "the caller hung up"
            lines.append(f"hangup           {ms(self.hangup_ms)}  {who}")
        lines.append(f"RTP sent {self.rtp_packets_sent} packets ({self.audio_sent_s:.1f} s), "
                     f"received {self.rtp_packets_received} packets ({self.audio_received_s:.1f} s of audio)")
        if self.recording:
            lines.append(f"recording        {self.recording}")
        if self.error:
            lines.append(f"error: {self.error}")
        return lines
