"""The OpenAI error envelope and the exception handlers that make every error use it.

Every non-2xx response body is ``{"error": {"message", "type", "param", "code"}}`` with all four
keys present (``param`` and ``code`` may be null), as in the OpenAPI components ErrorResponse/Error.
FastAPI's own shapes (``{"detail": ...}``, 422) never reach a client.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("reference_server")

INVALID_REQUEST = "invalid_request_error"


class APIError(Exception):
    """An error answered with the OpenAI envelope."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def unsupported_parameter(name: str) -> APIError:
    return APIError(
        400,
        f"Unsupported parameter: '{name}' is not supported by this server.",
        param=name,
        code="unsupported_parameter",
    )


def model_not_found(model: str) -> APIError:
    return APIError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def engine_error(exc: BaseException) -> APIError:
    """An engine exception as the HTTP error it means."""
    from reference_server.engine.errors import EngineOverloaded, EngineStopped

    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, EngineOverloaded):
        retry = max(1, math.ceil(exc.retry_after))
        return APIError(
            429,
            "The server is overloaded with requests; please retry shortly.",
            type="rate_limit_exceeded",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(retry)},
        )
    if isinstance(exc, EngineStopped):
        return APIError(
            503,
            "The engine is not running; please retry shortly.",
            type="service_unavailable",
            code="service_unavailable",
            headers={"Retry-After": "1"},
        )
    logger.error("generation failed: %r", exc)
    return APIError(500, "The server had an error while generating the response.", type="server_error")


def error_response(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


_STATUS_TYPES = {
    400: (INVALID_REQUEST, None),
    401: (INVALID_REQUEST, "invalid_api_key"),
    404: (INVALID_REQUEST, "not_found"),
    405: (INVALID_REQUEST, "method_not_allowed"),
    413: (INVALID_REQUEST, "request_too_large"),
    415: (INVALID_REQUEST, "unsupported_media_type"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    503: ("service_unavailable", "service_unavailable"),
}


def _http_exception_error(request: Request, exc: StarletteHTTPException) -> APIError:
    type_, code = _STATUS_TYPES.get(exc.status_code, ("server_error" if exc.status_code >= 500 else INVALID_REQUEST, None))
    if exc.status_code == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}. Please check the URL and method."
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}."
    else:
        message = str(exc.detail)
    headers = dict(exc.headers or {})
    return APIError(exc.status_code, message, type=type_, code=code, headers=headers)


def install_exception_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, APIError)
        return error_response(exc)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(_http_exception_error(request, exc))

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        # Routes parse their own bodies (see validation.py); this covers path/query parameters.
        assert isinstance(exc, RequestValidationError)
        from .validation import api_error_from_pydantic

        return error_response(api_error_from_pydantic(list(exc.errors())))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            APIError(500, "The server had an error while processing your request.", type="server_error")
        )

    async def engine_failure(request: Request, exc: Exception) -> JSONResponse:
        return error_response(engine_error(exc))

    async def client_gone(request: Request, exc: Exception) -> JSONResponse:
        # The client closed its connection before its body arrived (e.g. a keep-alive connection
        # closed under a new request): nobody reads the answer, and it is no server error.
        logger.debug("client disconnected before its request body was read: %s %s", request.method, request.url.path)
        return error_response(APIError(400, "The client disconnected before sending the whole request body.",
                                       code="client_disconnected"))

    from starlette.requests import ClientDisconnect

    from reference_server.engine.errors import EngineError

    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(EngineError, engine_failure)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
