"""The softphone's parts that place no call: its result as JSON and as a timeline, how a child softphone's end is
read back (its JSON result, or what its crash report says), the caller's synthesized speech, and `cli.py call`'s
errors before dialing. (The calls themselves are in test_softphone.py.)"""

import numpy as np
import pytest

from tests.support.audio import dominant_frequency, tone
from tests.support.cli import cli_call
from tools.softphone import CRASHED, PORT_RATE, CallResult, Turn, result_from_process, synthesize

pytestmark = pytest.mark.unit


def test_the_json_line_is_the_result():
    line = CallResult(ok=True, answered_ms=512.0).to_json()
    result = result_from_process(f"calling ...\n{line}\n", "", 0)
    assert result.ok and result.answered_ms == 512.0


def test_a_crash_names_the_fatal_error_and_the_innermost_frame():
    err = ("Fatal Python error: Segmentation fault\n\nCurrent thread 0x00007f (most recent call first):\n"
           '  File "/work/main/tools/softphone/call.py", line 131 in run\n'
           '  File "<frozen runpy>", line 88 in _run_code\n\n'
           "Extension modules: numpy._core._multiarray_umath, pjsua2._pjsua2 (total: 2)\n")
    result = result_from_process("", err, -11)
    assert result.error.startswith(CRASHED) and "(exit status -11)" in result.error
    assert "Segmentation fault" in result.error and "call.py\", line 131" in result.error


def test_result_survives_json_and_prints_a_timeline():
    result = CallResult(ok=True, ringing_ms=20, answered_ms=900, greeting_ms=1500, greeting_text="Hello there",
                        turns=[Turn(source="q.wav", speech_ms=1200, speech_end_ms=4000, reply_start_ms=5100,
                                    voice_to_voice_ms=1100, reply_text="We open at nine")],
                        hangup_by="agent", hangup_ms=9000, codec="G722/16000")
    again = CallResult.from_json(result.to_json())
    assert again == result
    text = "\n".join(again.timeline())
    assert "voice-to-voice    1100 ms" in text
    assert "the agent hung up (BYE)" in text
    assert again.agent_text == "Hello there We open at nine"


class FakeTTS:
    """Stands in for the Piper voice: two 'sentences' of tone at 22.05 kHz."""
    sample_rate = 22050

    def synthesize(self, text):
        yield tone(500, 0.5, rate=self.sample_rate)
        yield tone(500, 0.25, rate=self.sample_rate)


def test_say_text_is_synthesized_and_resampled_to_the_call_rate():
    audio = synthesize("hello", FakeTTS())
    assert audio.dtype == np.int16
    assert abs(audio.size / PORT_RATE - 0.75) < 0.02
    assert abs(dominant_frequency(audio) - 500) < 10


@pytest.mark.parametrize("content", [None, b"RIFF\x00\x00\x00\x00WAVEjunk"])
def test_unreadable_wav_is_rejected_before_dialing(tmp_path, content):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    proc = cli_call("--server", "127.0.0.1:9", "--play", str(path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0], proc.stderr
    assert "calling" not in proc.stderr


def test_without_pjsua2_the_call_command_says_how_to_install_it_in_one_line():
    proc = cli_call("--server", "127.0.0.1:9", "--say", "hello", hide_modules=("pjsua2",))
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: pjsua2 is not installed: the softphone needs the test extra"), line
    assert line.endswith(" -m pip install -e '.[test]'"), line
    assert "loading" not in proc.stderr  # said before any model (here the TTS for --say) loads
