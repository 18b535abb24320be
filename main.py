"""Runs the agent worker: python main.py start | dev | console | connect --room NAME"""

import os
import sys
from pathlib import Path

from dotenv import load_dotenv

# .env fills in what the environment does not already say (the stack passes its own values).
load_dotenv(Path(__file__).with_name(".env"), override=False)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never fetch model weights at run time

from livekit.agents import cli  # noqa: E402

from agent.business import BusinessProfile  # noqa: E402
from agent.providers import choose_providers  # noqa: E402
from agent.worker import server  # noqa: E402

if __name__ == "__main__":
    try:
        BusinessProfile.load()  # a wrong setting stops here, in one line, not in every call
        choose_providers()
    except ValueError as error:
        sys.exit(f"error: .env: {error}")
    cli.run_app(server)
