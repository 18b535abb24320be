"""The local playground: a small page to talk to the agent from a browser, and the endpoint that gives it tokens.

The token endpoint never exposes the API secret, mints only fresh `web-...` rooms (a page cannot ask for
someone else's room, a phone caller's say), and grants what the page needs and no more.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from stack.settings import Settings

from .tokens import join_token, new_room_name

HERE = Path(__file__).resolve().parent
CLIENT_BUNDLE = HERE / "web" / "node_modules" / "livekit-client" / "dist" / "livekit-client.umd.js"
SESSION_TTL = timedelta(minutes=30)


def create_app(livekit_url: str, api_key: str, api_secret: str, agent_name: str) -> FastAPI:
    app = FastAPI(title="Phone assistant playground", docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz():
        return {"ok": True, "livekit_client": CLIENT_BUNDLE.exists()}

    @app.post("/api/session")
    async def session():
        """A new room and a token for it; the agent is dispatched into that room when the user joins."""
        room, identity = new_room_name(), f"web-{secrets.token_hex(3)}"
        token = join_token(api_key, api_secret, room, identity, agent_name, SESSION_TTL)
        return {"url": livekit_url, "room": room, "identity": identity, "token": token}

    @app.get("/livekit-client.umd.js")
    async def livekit_client():
        if not CLIENT_BUNDLE.exists():
            return JSONResponse({"error": "livekit-client is not installed: run `npm ci` in playground/web"}, 500)
        return FileResponse(CLIENT_BUNDLE, media_type="text/javascript")

    app.mount("/", StaticFiles(directory=HERE / "static", html=True), name="static")
    return app


def app_from_settings(settings: Settings) -> FastAPI:
    if not settings.api_key or not settings.api_secret:
        raise SystemExit("no LIVEKIT_API_KEY / LIVEKIT_API_SECRET: run `python cli.py up` or set them in .env")
    return create_app(settings.playground_livekit_url or settings.livekit_url, settings.api_key,
                      settings.api_secret, settings.agent_name)
