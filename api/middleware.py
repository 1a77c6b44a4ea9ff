"""ASGI middleware of the query API."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware


class BodySizeLimit(BaseHTTPMiddleware):
    """Refuse bodies over the configured size before reading them."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def dispatch(self, request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and int(length) > self.max_bytes:
            return JSONResponse(
                {"detail": f"request body of {length} bytes is over the {self.max_bytes}-byte limit"}, status_code=413
            )
        return await call_next(request)
