"""python -m local_openai.speak TEXT [--sample-rate 24000] [--voice NAME]: TEXT in the offline Piper voice, as raw
16-bit little-endian mono PCM on stdout, sentence by sentence as it is synthesized.

A program of its own so that Piper (GPL-3.0) never loads into the process that wants speech: the agent, which is
Apache-2.0, runs this through a pipe when the AI provider is down (agent/worker.py), just as it otherwise talks to
the endpoint over HTTP. Errors go to stderr, one line, exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

# The rate the caller asks for decides the output, so the pipe needs no header; this default is OpenAI's `pcm` rate.
DEFAULT_SAMPLE_RATE = 24000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_openai.speak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", help="what to say")
    parser.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE, help="output rate in Hz")
    parser.add_argument("--voice", help="a Piper .onnx voice (default: LOCAL_TTS_VOICE, else en_US-joe-medium)")
    args = parser.parse_args(argv)
    if args.sample_rate < 8000:
        parser.error("--sample-rate must be at least 8000")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    from .model_store import ModelError
    from .tts import TextToSpeech

    try:
        tts = TextToSpeech(args.voice)
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = sys.stdout.buffer
    for chunk in tts.synthesize_at(args.text, args.sample_rate):
        out.write(chunk.astype("<i2").tobytes())
        out.flush()  # the listener plays each sentence while the next is synthesized
    return 0


if __name__ == "__main__":
    sys.exit(main())
