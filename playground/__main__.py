"""python -m playground [--host 127.0.0.1] [--port 8090]: serve the local playground page."""

import argparse
import os

import uvicorn

from .server import app_from_env

parser = argparse.ArgumentParser(prog="python -m playground")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=int(os.environ.get("PLAYGROUND_PORT", "8090")))
args = parser.parse_args()
print(f"playground on http://{args.host}:{args.port}/", flush=True)
uvicorn.run(app_from_env(), host=args.host, port=args.port, log_level="warning")
