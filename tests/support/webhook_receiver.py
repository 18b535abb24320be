"""A webhook receiver as a user would write one (aiohttp on 127.0.0.1): it checks the signature with hmac itself,
not with our code, and answers with the statuses a test gives it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import threading
import time

from aiohttp import web

TEST_SECRET = "whsec_test-secret"


class Receiver:
    """A webhook receiver as a user would write one: it checks the signature itself (hmac, not our code)."""

    def __init__(self, answers: list[int] | None = None, secret: str = TEST_SECRET):
        self.answers, self.secret = list(answers or []), secret
        self.received: list[tuple[dict, bytes]] = []
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((dict(request.headers), body))
        timestamp = request.headers["X-Webhook-Timestamp"]
        signed = f"{timestamp}.".encode() + body
        expected = "sha256=" + hmac.new(self.secret.encode(), signed, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers["X-Webhook-Signature"], expected) or \
                abs(time.time() - int(timestamp)) > 300:
            return web.Response(status=401, text="bad signature")
        status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status)

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]




class ReceiverThread:
    """A Receiver on a loop of its own, for tests whose webhook comes from another process or a blocking call."""

    def __init__(self, receiver: Receiver, port: int = 0):
        self.receiver, self.port = receiver, port
        self.loop = asyncio.new_event_loop()
        self.url = ""

    def __enter__(self) -> Receiver:
        up = threading.Event()

        def serve():
            self.url = self.loop.run_until_complete(self.receiver.start(self.port))
            up.set()
            self.loop.run_forever()
        threading.Thread(target=serve, daemon=True).start()
        if not up.wait(10):
            raise RuntimeError("the webhook receiver did not start")
        return self.receiver

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
