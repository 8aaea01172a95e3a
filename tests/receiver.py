"""A real local HTTP server standing in for PagerDuty and Slack: requests kept, answers scripted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Answer", "Receiver", "receiver"]


@dataclass(frozen=True)
class Answer:
    """One scripted answer: status, headers, body, and a delay before it (for timeouts)."""

    status: int = 202
    body: str = '{"status":"success","message":"Event processed"}'
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Receiver:
    """The server's URL, the requests it got (path, JSON body, arrival time), and its script."""

    url: str
    script: list[Answer]
    default: Answer
    requests: list[tuple[str, Any, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, path: str | None = None) -> list[Any]:
        """The JSON bodies received (at `path`, if given), in order."""
        with self.lock:
            return [b for p, b, _ in self.requests if path is None or p == path]

    def next_answer(self) -> Answer:
        with self.lock:
            return self.script.pop(0) if self.script else self.default


@contextmanager
def receiver(*script: Answer, default: Answer | None = None) -> Iterator[Receiver]:
    """A threaded HTTP server on a free loopback port for the block; answers `script` in order."""
    state = Receiver(url="", script=list(script), default=default or Answer())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body: Any = json.loads(raw)
            except json.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
            with state.lock:
                state.requests.append((self.path, body, time.monotonic()))
            answer = state.next_answer()
            if answer.delay_s:
                time.sleep(answer.delay_s)
            try:
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                payload = answer.body.encode()
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
