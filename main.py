"""Runs the agent worker: python main.py start | dev | console | connect --room NAME"""

import os
import sys


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # huggingface_hub reads it: never fetch model weights at run time

    from agent.business import BusinessProfile
    from agent.providers import choose_providers
    from stack.settings import Settings

    try:
        settings = Settings.load()
        BusinessProfile.load(settings)  # a wrong setting stops here, in one line, not in every call
        choose_providers(settings)
    except ValueError as error:  # SettingsError is one
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if sys.argv[1:2] == ["start"]:  # a worker that takes calls ends those a dead predecessor left in silence
        from agent.orphans import OrphanSweeper

        OrphanSweeper(settings).start()

    from livekit.agents import cli

    from agent import redact
    from agent.worker import build_server

    redact.install()  # callers' numbers masked in the log above debug level
    cli.run_app(build_server(settings))


if __name__ == "__main__":
    main()
