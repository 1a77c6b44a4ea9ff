"""Error answers that can always be written: a 422 echoes the input it refuses, and that input may hold NaN,
±Infinity (JSON has neither) or a lone surrogate (UTF-8 has none), which the default handler cannot serialise."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match, Route


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as strings ("nan", "inf"), lone surrogates escaped, and anything else
    that is not JSON as its ``str``."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return json_safe(str(value))


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": json_safe(exc.errors())}, status_code=422)


async def not_unicode(_request: Request, exc: Exception) -> JSONResponse:
    """The backstop for text that is not valid Unicode (a lone surrogate) reaching a codec."""
    return JSONResponse({"detail": json_safe(f"text is not valid Unicode: {exc}")}, status_code=422)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's answer, and on a 405 an Allow header naming every method the path has (its routes are
    spread over routers, so the matched route alone would name only its own)."""
    assert isinstance(exc, StarletteHTTPException)
    response = await http_exception_handler(request, exc)
    if exc.status_code == 405:
        methods: set[str] = set()
        for route in request.app.routes:
            match, _ = route.matches({**request.scope, "method": "GET"}) if isinstance(route, Route) else (None, None)
            if match is not None and match != Match.NONE and route.methods:
                methods |= route.methods
        response.headers["Allow"] = ", ".join(sorted(methods))
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(UnicodeError, not_unicode)
