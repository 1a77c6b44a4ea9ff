"""The dashboard's reads as read models: each answer (a route, its query string, the caller) is encoded to JSON
bytes once per committed write and served as those bytes, instead of being recomputed from DuckDB per request.

A route opts in with :func:`read_model` under its ``@router.get``; its handler stays the one definition of the
answer (role check, scoping, validation of the query are FastAPI's as before). The first read of an answer runs
the handler off the event loop and keeps the recipe (the handler with its resolved arguments); from then on every
committed batch (the sink's) rebuilds the answers read in the last ``idle_s`` *before* the store's version moves
(``ReadModel.before_version_moves``, called in the writer's thread), so a batch is visible to the next read once
it returns, and no read waits for a rebuild; single statements (the settler's payout rows, tokens, submissions)
are caught up with in the background, once per burst. Answers that also depend on the clock (a zone's
staleness) are rebuilt in the background once ``max_age_s`` old and served meanwhile.

:class:`ReadModelFastPath` answers a known caller's kept answer straight from its bytes in front of FastAPI (a
token hash, two dict lookups); anything else (no token, an unknown one, a first read, a forbidden role, bad
input) goes through the app as before. Answers are keyed by path, raw query string and the caller (role and
subject): a caller only ever gets bytes built for itself by the handler that admitted it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool

from api.security import Principal, known_principal
from sinks.read_model import ReadModel
from toogreen.settings import ReadModelSettings

log = logging.getLogger(__name__)

Key = tuple[str, bytes, Principal]  # path, raw query string, caller
REQUEST_PARAM = "read_model_request"
PREFIX = "/api/v1/"  # the fast path looks at no other path
JSON_HEADERS = (b"content-type", b"application/json")


@dataclass(frozen=True)
class Recipe:
    """How an answer is built: the route's handler with the arguments FastAPI resolved for it, and the adapter of
    its response model (the same validation and JSON encoding FastAPI applies to a handler's return value)."""

    call: Callable[[], Any]
    adapter: TypeAdapter[Any]

    def encode(self) -> bytes:
        return self.adapter.dump_json(self.adapter.validate_python(self.call(), from_attributes=True), by_alias=True)


@dataclass
class Answer:
    body: bytes
    version: int  # the store's read-model version it is current for
    built_at: float  # time.monotonic()
    recipe: Recipe
    last_read: float
    refreshing: bool = field(default=False)


class ReadModels:
    """The kept answers of one app, rebuilt on every committed write of its store."""

    def __init__(self, version: ReadModel, settings: ReadModelSettings) -> None:
        self._version = version
        self.settings = settings
        self._answers: dict[Key, Answer] = {}
        self._lock = threading.Lock()  # orders replacements: the writer, background refreshes, first builds
        self._building: dict[Key, asyncio.Future[bytes]] = {}
        self._required = 0  # an answer built before the last batch's version is not served
        self._behind = False  # single statements committed since the last catch-up started
        self._catching_up = False
        self.served = 0  # reads answered from kept bytes
        self.built = 0  # answers built on a read (first reads, or an answer that missed a write)
        self.rebuilt = 0  # answers rebuilt on a write or in the background
        version.before_version_moves.append(self._on_write)

    def current(self, key: Key) -> bytes | None:
        """The kept bytes of ``key`` if they were built after the last batch landed, else None (build them)."""
        answer = self._answers.get(key)
        if answer is None or answer.version < self._required:
            return None
        now = time.monotonic()
        answer.last_read = now
        if now - answer.built_at >= self.settings.max_age_s and not answer.refreshing:
            answer.refreshing = True
            asyncio.get_running_loop().run_in_executor(None, self._refresh, key, answer)
        self.served += 1
        return answer.body

    async def answer(self, key: Key, recipe: Recipe) -> bytes:
        """The bytes of ``key``: kept, or built now off the event loop (once, however many ask at the same time)."""
        body = self.current(key)
        if body is not None:
            return body
        pending = self._building.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            body = await run_in_threadpool(self._build, key, recipe)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters (if any) raise it too
            raise
        finally:
            del self._building[key]
        future.set_result(body)
        return body

    def _build(self, key: Key, recipe: Recipe) -> bytes:
        version = self._version.version  # read first: data committed after it makes the answer newer, not older
        body = recipe.encode()
        now = time.monotonic()
        self._keep(key, Answer(body, version, now, recipe, last_read=now))
        self.built += 1
        return body

    def _refresh(self, key: Key, answer: Answer) -> None:
        """Rebuild an answer grown older than ``max_age_s`` (in the background; a failure keeps the old one)."""
        try:
            version = self._version.version
            body = answer.recipe.encode()
            self._keep(key, Answer(body, version, time.monotonic(), answer.recipe, answer.last_read))
            self.rebuilt += 1
        except Exception:
            log.exception("read model %s: background rebuild failed; the next write rebuilds it", key[0])
        finally:
            answer.refreshing = False

    def _on_write(self, next_version: int, batch: bool) -> None:
        """A write has committed and the store's version is about to become ``next_version``. A batch (the sink's,
        a node registration): every answer is rebuilt here, in the writer's thread, before the version moves, and
        older answers are no longer served. A single statement (the settler's payout rows, a token, a submission;
        they come in bursts): the answers are rebuilt in a background thread, once per burst, and served
        meanwhile (they lag such a statement by one rebuild)."""
        if batch:
            self._rebuild(next_version)
            self._required = next_version
            return
        with self._lock:
            self._behind = True
            if self._catching_up:
                return
            self._catching_up = True
        threading.Thread(target=self._catch_up, name="read-models-catch-up", daemon=True).start()

    def _catch_up(self) -> None:
        while True:
            with self._lock:
                if not self._behind:
                    self._catching_up = False
                    return
                self._behind = False
            self._rebuild(self._version.version)

    def _rebuild(self, version: int) -> None:
        """Rebuild every answer read in the last ``idle_s`` for ``version`` (drop the others)."""
        now = time.monotonic()
        with self._lock:
            kept = list(self._answers.items())
        for key, answer in kept:
            if now - answer.last_read > self.settings.idle_s:
                self._drop(key, answer)
                continue
            try:
                body = answer.recipe.encode()
            except Exception:  # the read path builds it again, and answers its error if it has one
                log.exception("read model %s: rebuild after a write failed; dropped", key[0])
                self._drop(key, answer)
                continue
            self._keep(key, Answer(body, version, time.monotonic(), answer.recipe, answer.last_read))
            self.rebuilt += 1

    def _keep(self, key: Key, answer: Answer) -> None:
        with self._lock:
            existing = self._answers.get(key)
            if existing is not None and existing.version > answer.version:
                return  # built from older data than what is kept (a rebuild raced a write)
            if existing is None:
                self._make_room(key[2])
            self._answers[key] = answer

    def _make_room(self, caller: Principal) -> None:
        """Before a new answer is kept: at most ``max_per_caller`` per caller and ``max_entries`` in all, the least
        recently read going first (each kept answer is rebuilt on every write: a caller varying its query string
        must not multiply the writer's work)."""
        own = [k for k in self._answers if k[2] == caller]
        if len(own) >= self.settings.max_per_caller:
            del self._answers[min(own, key=lambda k: self._answers[k].last_read)]
        if len(self._answers) >= self.settings.max_entries:
            del self._answers[min(self._answers, key=lambda k: self._answers[k].last_read)]

    def _drop(self, key: Key, answer: Answer) -> None:
        with self._lock:
            if self._answers.get(key) is answer:
                del self._answers[key]


def read_model(response_type: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Serve a GET route from its read model: put it under ``@router.get(..., response_model=response_type)``.
    The handler must take its caller (a :class:`Principal`) and nothing request-bound besides its query
    parameters and app-wide dependencies: it is called again, with the same arguments, on every write. With read
    models off (``TOOGREEN_READ_MODELS__ENABLED=false``) the handler answers per request, as before."""
    adapter: TypeAdapter[Any] = TypeAdapter(response_type)

    def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(handler, eval_str=True)

        @functools.wraps(handler)
        async def endpoint(**kwargs: Any) -> Any:
            request: Request = kwargs.pop(REQUEST_PARAM)
            models: ReadModels | None = request.app.state.read_models
            if models is None:
                return await run_in_threadpool(handler, **kwargs)
            caller = next(v for v in kwargs.values() if isinstance(v, Principal))
            key = (request.scope["path"], request.scope["query_string"], caller)
            body = await models.answer(key, Recipe(functools.partial(handler, **kwargs), adapter))
            return Response(body, media_type="application/json")

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()]
        request_param = inspect.Parameter(REQUEST_PARAM, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        endpoint.__signature__ = signature.replace(parameters=[request_param, *params])  # type: ignore[attr-defined]
        return endpoint

    return wrap


class ReadModelFastPath:
    """Pure ASGI middleware in front of the app: a GET whose answer is kept for its (already known) caller is
    answered from the kept bytes, without FastAPI; everything else goes on to the app."""

    def __init__(self, app: Any, state: Any, models: ReadModels) -> None:
        self.app = app
        self.state = state
        self.models = models

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = self._kept(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        if body is None:
            await self.app(scope, receive, send)
            return
        headers = [(b"content-length", str(len(body)).encode()), JSON_HEADERS]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _kept(self, scope: dict[str, Any]) -> bytes | None:
        if not scope["path"].startswith(PREFIX):
            return None
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if authorization is None:
            return None
        scheme, token = get_authorization_scheme_param(authorization.decode("latin-1"))
        if scheme.lower() != "bearer" or not token:
            return None
        caller = known_principal(self.state, token)
        if caller is None:
            return None
        return self.models.current((scope["path"], scope["query_string"], caller))
