"""python -m playground [--host 127.0.0.1] [--port PLAYGROUND_PORT]: serve the local playground page."""

import argparse
import sys

import uvicorn

from stack.settings import Settings, SettingsError

from .server import app_from_settings

try:
    settings = Settings.load()
except SettingsError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
parser = argparse.ArgumentParser(prog="python -m playground")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=settings.playground_port)
args = parser.parse_args()
app = app_from_settings(settings, args.host)  # refuses (one line) what it must not serve
print(f"playground on http://{args.host}:{args.port}/", flush=True)
uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
