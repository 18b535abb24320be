"""`python cli.py call`: dial the assistant with the test softphone and print the call's timeline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tools.softphone.call import CODECS, place_call
from tools.softphone.results import CallOptions, SoftphoneError


def dial_defaults() -> tuple[str, str]:
    """(server, number) from the settings: livekit-sip on $SIP_LISTEN_IP (127.0.0.1 when it listens on every address)
    and $SIP_PORT, the first of SIP_NUMBERS."""
    from stack.settings import ANY_ADDRESS, LOOPBACK, Settings

    settings = Settings.load()
    host = LOOPBACK if settings.sip_listen_ip == ANY_ADDRESS else settings.sip_listen_ip
    return f"{host}:{settings.sip_port}", settings.sip_numbers[0]


def call(
    play: Annotated[list[Path] | None, typer.Option(
        "--play", help="A WAV file (any rate) the caller says; repeat for several turns.")] = None,
    say: Annotated[list[str] | None, typer.Option(
        "--say", help="Text the caller says, spoken by the local Piper voice; repeat for several turns. "
                      "\"keys: 0#\" presses keypad keys as a turn instead.")] = None,
    record: Annotated[Path | None, typer.Option("--record", help="Write what the caller heard to this WAV.")] = None,
    dtmf: Annotated[str, typer.Option("--dtmf", help="DTMF digits to send after the greeting, e.g. 123#.")] = "",
    number: Annotated[str | None, typer.Option(
        "--number", help="Number to dial (default: the first of SIP_NUMBERS).")] = None,
    caller_id: Annotated[str, typer.Option("--from", help="Caller ID (the From user).")] = "+15550123",
    server: Annotated[str | None, typer.Option(
        "--server", help="SIP server host:port (default 127.0.0.1:$SIP_PORT).")] = None,
    hangup_after: Annotated[float, typer.Option(
        "--hangup-after", help="Seconds to stay on the line after the last reply before hanging up.")] = 0.0,
    hangup_mid_reply: Annotated[float | None, typer.Option(
        "--hangup-mid-reply", help="Hang up this many seconds into the agent's last reply.")] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Seconds to wait for the answer, the greeting and each reply.")] = 30.0,
    codec: Annotated[list[str] | None, typer.Option(
        "--codec", help=f"Codecs to offer, in order ({', '.join(CODECS)}); default g722 then pcmu.")] = None,
    transcribe: Annotated[bool, typer.Option(help="Transcribe what the agent said with the local STT.")] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as one JSON line.")] = False,
):
    """Call the assistant like a phone would (SIP + RTP) and print the timeline: answer, greeting, voice-to-voice."""
    default_server, default_number = dial_defaults()
    options = CallOptions(
        server=server or default_server, number=number or default_number, caller_id=caller_id,
        play=[str(p) for p in play or []], say=list(say or []), dtmf=dtmf,
        record=str(record) if record else None, hangup_after=hangup_after, hangup_mid_reply=hangup_mid_reply,
        timeout=timeout, transcribe=transcribe, codecs=list(codec or ["g722", "pcmu"]),
    )
    if ":" not in options.server:
        _fail(f"--server must be host:port, got {options.server!r}", 2)
    try:
        result = place_call(options, progress=lambda message: print(message, file=sys.stderr, flush=True))
    except SoftphoneError as error:
        _fail(str(error), 2)
    if json_output:
        print(result.to_json())
    else:
        for line in result.timeline():
            if not line.startswith("error:"):
                print(line)
    if result.error:
        _fail(result.error, 1)


def _fail(message: str, code: int):
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)
