"""One error shape for every failure: `{"error": {"code", "message"}}`, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

logger = logging.getLogger("api")


class ErrorBody(BaseModel):
    code: str
    message: str
    param: str | None = Field(default=None, description="The request field at fault, where one is (as OpenAI's).")


class ErrorResponse(BaseModel):
    """Body of every 4xx and 5xx answer."""

    error: ErrorBody


class APIError(Exception):
    """A failure with its HTTP status, a stable machine code and a message for people."""

    def __init__(self, status: int, code: str, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param


_DESCRIPTIONS = {
    400: "Malformed request (e.g. a body that is not JSON)",
    401: "Missing or invalid API key (webhooks: missing, wrong or stale signature)",
    403: "The API key lacks the role or MCP scope, or no keys are configured and the request is not on loopback",
    404: "Unknown orchestration or tool call",
    409: "Conflict with the run's state (already decided, run finished)",
    413: "Request body or prompt over the size limit",
    422: "Invalid request body or parameters",
    502: "The orchestration behind a chat completion failed or was cancelled",
    503: "Temporal or the workers are not reachable",
}


def error_responses(*statuses: int, json_beside: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the given error statuses. `json_beside`: the route's
    own media type is not JSON (an event stream), so say that errors come as JSON."""
    extra: dict[str, Any] = (
        {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
        if json_beside
        else {}
    )
    return {status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status], **extra} for status in statuses}


def _body(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    error = {"code": code, "message": message}
    return {"error": error | {"param": param} if param is not None else error}


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
}


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the error shape; unexpected ones are logged, never echoed."""

    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(_body(exc.code, exc.message, exc.param), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(error.get("type") == "json_invalid" for error in errors):
            return JSONResponse(_body("invalid_json", "request body is not valid JSON"), status_code=400)
        return JSONResponse(_body("invalid_request", _describe_validation(errors)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; list them all.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return JSONResponse(_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error")
        return JSONResponse(_body("internal_error", "internal error; see the server log"), status_code=500)


def _describe_validation(errors: Any) -> str:
    parts = []
    for error in list(errors)[:5]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)
