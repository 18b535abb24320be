"""A test softphone: dials like a real phone (pjsua2: SIP dialog, RTP paced in real time) and times the conversation.

    results.py  CallOptions, CallResult, Turn: what a call is asked to do and what came of it, as JSON and a timeline
    media.py    the caller's audio (WAV, text spoken by the local voice), WAV in and out, the pjsua2 media port
    call.py     the SIP call (`place_call`), one per process; pjsua2 comes with the `test` extra
    runner.py   calls in child processes (`place_call_in_subprocess`), so that several run at once
    command.py  `python cli.py call`

Importing this package does not import pjsua2: only placing a call does.
"""

from tools.softphone.call import CODECS, pjsua2_module, place_call, prepare_utterances, transcribe_result
from tools.softphone.media import (
    FRAME_MS,
    FRAME_SAMPLES,
    PORT_RATE,
    CallAudio,
    load_wav,
    make_media_port,
    read_wav,
    synthesize,
    write_wav,
)
from tools.softphone.results import DEFAULT_VOICE_THRESHOLD, CallOptions, CallResult, SoftphoneError, Turn
from tools.softphone.runner import CRASHED, place_call_in_subprocess, result_from_process, run_call_process

__all__ = [
    "CODECS", "CRASHED", "DEFAULT_VOICE_THRESHOLD", "FRAME_MS", "FRAME_SAMPLES", "PORT_RATE", "CallAudio",
    "CallOptions", "CallResult", "SoftphoneError", "Turn", "load_wav", "make_media_port", "pjsua2_module",
    "place_call", "place_call_in_subprocess", "prepare_utterances", "read_wav", "result_from_process",
    "run_call_process", "synthesize", "transcribe_result", "write_wav",
]
