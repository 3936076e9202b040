"""Bearer API-key check (ASGI middleware): 401 invalid_api_key unless the key matches.

Compared with `hmac.compare_digest`; the key is never logged nor echoed. With a key set, only
/health (liveness probes) needs none; the API description (/openapi.json, /docs, /redoc) needs it
too unless the server was started with `--public-docs` (`public_docs=True`).
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import APIError, error_response

OPEN_PATHS = frozenset({"/health"})
DOCS_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


class APIKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str | None, public_docs: bool = False) -> None:
        self.app = app
        self.api_key = api_key.encode("utf-8") if api_key else None
        self.open_paths = OPEN_PATHS | DOCS_PATHS if public_docs else OPEN_PATHS

    def _error(self, header: str | None) -> APIError | None:
        if self.api_key is None:
            return None
        if not header:
            message = (
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return APIError(401, message, code="invalid_api_key")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return APIError(
                401,
                "Malformed Authorization header; expected 'Authorization: Bearer YOUR_KEY'.",
                code="invalid_api_key",
            )
        if not hmac.compare_digest(token.encode("utf-8"), self.api_key):
            return APIError(401, "Incorrect API key provided.", code="invalid_api_key")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.api_key is None or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        header: str | None = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        error = self._error(header)
        if error is not None:
            await error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)
