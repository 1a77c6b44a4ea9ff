"""The answer cache of the dashboard's reads: a GET answered once is answered again from bytes until a write
commits (the store's read-model version moves) or ``max_age_s`` passes (answers that depend on the clock, such
as a zone's staleness, drift by at most that). Keyed by path, query and the caller's Authorization header, so a
caller only ever gets an answer computed for its own token; only 200s are kept."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sinks.read_model import ReadModel

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class _Answer:
    version: int
    at: float
    headers: list[tuple[bytes, bytes]]
    body: bytes


class AnswerCache:
    """Pure ASGI middleware in front of the app for GETs under ``prefix``."""

    def __init__(self, app: Any, read_model: ReadModel, max_age_s: float, prefix: str = "/api/v1/") -> None:
        self.app = app
        self.read_model = read_model
        self.max_age_s = max_age_s
        self.prefix = prefix
        self._answers: dict[tuple[str, bytes, bytes], _Answer] = {}
        self.hits = 0
        self.misses = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        auth = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        key = (scope["path"], scope["query_string"], auth)
        version = self.read_model.version
        answer = self._answers.get(key)
        if answer is not None and answer.version == version and time.monotonic() - answer.at < self.max_age_s:
            self.hits += 1
            await send({"type": "http.response.start", "status": 200, "headers": answer.headers})
            await send({"type": "http.response.body", "body": answer.body})
            return
        self.misses += 1
        started = time.monotonic()
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def keep(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body" and start.get("status") == 200:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    if len(self._answers) >= MAX_ENTRIES:
                        self._answers.clear()
                    self._answers[key] = _Answer(version, started, list(start["headers"]), b"".join(chunks))
            await send(message)

        await self.app(scope, receive, keep)
