"""A stand-in for the AI provider, for the tests of what a wrong key does."""

from __future__ import annotations

import http.server
import threading


class RejectingProvider:
    """A stand-in for api.openai.com answering 401, as it does for a wrong or expired key; its base URL."""

    def __enter__(self) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(401)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"error": {"message": "Incorrect API key provided"}}')

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def __exit__(self, *exc):
        self.server.shutdown()
