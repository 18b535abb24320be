"""How a child softphone's end is read back: its JSON result, or what its crash report says."""

import pytest

from sip.softphone import CRASHED, CallResult, result_from_process

pytestmark = pytest.mark.unit


def test_the_json_line_is_the_result():
    line = CallResult(ok=True, answered_ms=512.0).to_json()
    result = result_from_process(f"calling ...\n{line}\n", "", 0)
    assert result.ok and result.answered_ms == 512.0


def test_a_crash_names_the_fatal_error_and_the_innermost_frame():
    err = ("Fatal Python error: Segmentation fault\n\nCurrent thread 0x00007f (most recent call first):\n"
           '  File "/work/main/sip/softphone.py", line 358 in run\n  File "<frozen runpy>", line 88 in _run_code\n\n'
           "Extension modules: numpy._core._multiarray_umath, pjsua2._pjsua2 (total: 2)\n")
    result = result_from_process("", err, -11)
    assert result.error.startswith(CRASHED) and "(exit status -11)" in result.error
    assert "Segmentation fault" in result.error and "softphone.py\", line 358" in result.error
