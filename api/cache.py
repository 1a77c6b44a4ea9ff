"""The answer cache of the GETs that are not read models (``api/read_models.py`` keeps the dashboard's reads, in
front of this cache): a GET answered once is answered again from bytes until a write
commits (the store's read-model version moves) or ``max_age_s`` passes (answers that depend on the clock, such
as a zone's staleness, drift by at most that). Keyed by path, query and the caller's Authorization header, so a
caller only ever gets an answer computed for its own token; only 200s are kept. Concurrent misses of one key
wait for the first one's answer instead of each computing it (right after a batch lands, 50 clients would
otherwise compute the same answer 50 times)."""

from __future__ import annotations

import asyncio
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
        self._computing: dict[tuple[str, bytes, bytes], tuple[int, asyncio.Future[_Answer | None]]] = {}
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
        if answer is None or answer.version != version or time.monotonic() - answer.at >= self.max_age_s:
            pending = self._computing.get(key)
            answer = await pending[1] if pending is not None and pending[0] == version else None
        if answer is not None:
            self.hits += 1
            await send({"type": "http.response.start", "status": 200, "headers": answer.headers})
            await send({"type": "http.response.body", "body": answer.body})
            return
        self.misses += 1
        future: asyncio.Future[_Answer | None] = asyncio.get_running_loop().create_future()
        self._computing[key] = (version, future)
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
                    kept = _Answer(version, started, list(start["headers"]), b"".join(chunks))
                    self._answers[key] = kept
                    if not future.done():
                        future.set_result(kept)
            await send(message)

        try:
            await self.app(scope, receive, keep)
        finally:
            if not future.done():
                future.set_result(None)  # not a 200: the waiters compute their own
            if self._computing.get(key, (None, None))[1] is future:
                del self._computing[key]
