"""python -m local_openai [--host 127.0.0.1] [--port LOCAL_OPENAI_PORT]: load every model, then serve the
OpenAI-compatible API.

The port answers only once the models are loaded, so `GET /healthz` == 200 means ready. Every other path wants
LOCAL_OPENAI_API_KEY as `Authorization: Bearer <key>` (see guard.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

# Below the audio path in the CPU's queue: at two calls the models' bursts delayed the agent's VAD (docs/benchmarks.md).
NICENESS = 5
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # huggingface_hub reads it: never fetch model weights at run time


def main() -> int:
    from stack.settings import Settings, SettingsError

    try:
        settings = Settings.load()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="python -m local_openai", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=settings.local_openai_port)
    args = parser.parse_args()
    if not settings.local_openai_api_key:
        print(f"error: LOCAL_OPENAI_API_KEY is not set in {settings.env_file} or the environment: run "
              "`python cli.py up` (it generates one) or set it yourself", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    log = logging.getLogger("local_openai")
    # Every model thread started from here on inherits it: the agent's audio path (VAD, rtc) goes first on a busy CPU.
    os.nice(NICENESS)

    import uvicorn

    from .app import Models, create_app
    from .model_store import ModelError

    started = time.monotonic()
    log.info("loading models (STT, LLM, TTS) ...")
    try:
        models = Models.load(settings)
    except ModelError as error:
        log.error("%s", error)
        return 2
    log.info("priming the LLM's prompt cache took %.1f s", models.llm.warm())
    log.info("models ready in %.1f s: %s; serving on http://%s:%d/v1", time.monotonic() - started,
             models.names(), args.host, args.port)
    uvicorn.run(create_app(models, settings, bind_host=args.host), host=args.host, port=args.port,
                log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
