"""RFC 9457 problem details: the API's error shape, the domain exceptions and the one handler that maps them.

Every error response is ``application/problem+json`` with ``type``, ``title``, ``status``, ``detail`` and,
where it helps, ``instance`` and extension members (``errors`` for 422, ``active_run`` for 409). Litestar's
own HTTP exceptions (404 route, 405, 413 body too large, 400 bad query) go through the same handler.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from pydantic import BaseModel, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE_BASE = "https://zmi-reconciler.invalid/problems/"
log = logging.getLogger("zmi_reconciler.api")


class FieldError(BaseModel):
    """One validation error: the field path in the document, its position in the YAML text (1-based, 0 when
    the document came as JSON and has no text position), a code and a message."""

    path: str = Field(description="field path, e.g. `tasks[2].params.keep`; empty for the whole document",
                      examples=["timing.every"])
    line: int = Field(ge=0, description="1-based line in the YAML text (0: not known)")
    column: int = Field(ge=0, description="1-based column in the YAML text (0: not known)")
    code: str = Field(description="finding code (E...)", examples=["E100"])
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="URI naming the problem type")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = Field(default=None, description="422: every validation error")
    active_run: str | None = Field(default=None, description="409 on overlap: the run that is active")


class ApiProblem(Exception):
    """Base of the API's domain exceptions; ``status``/``slug``/``title`` select the problem type."""

    status = 500
    slug = "internal"
    title = "Internal server error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}


class BadRequest(ApiProblem):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(ApiProblem):
    status, slug, title = 401, "unauthorized", "Missing or unknown token"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = 'Bearer realm="zmi-reconciler"'


class Forbidden(ApiProblem):
    status, slug, title = 403, "forbidden", "Token lacks the write role"


class NotFound(ApiProblem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ApiProblem):
    status, slug, title = 409, "conflict", "Conflict"


class RunActive(ApiProblem):
    status, slug, title = 409, "run-active", "A run of this schedule is active"


class PreconditionFailed(ApiProblem):
    status, slug, title = 412, "precondition-failed", "If-Match does not match the file"


class UnsupportedMediaType(ApiProblem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class Invalid(ApiProblem):
    status, slug, title = 422, "invalid-schedule", "The schedule is not valid"

    def __init__(self, detail: str, errors: list[FieldError]) -> None:
        super().__init__(detail, errors=[e.model_dump() for e in errors])


class InvalidRequest(Invalid):
    """422 for a request that is well-formed but not acceptable (a date range too long, a month that does not
    exist, an unknown key in a body); ``errors`` names the query parameter or body field."""

    status, slug, title = 422, "invalid-request", "The request is not valid"


class PreconditionRequired(ApiProblem):
    status, slug, title = 428, "precondition-required", "If-Match is required"


class Unavailable(ApiProblem):
    status, slug, title = 503, "unavailable", "Not ready"


def problem_response(status: int, title: str, detail: str | None, slug: str, instance: str | None = None,
                     headers: dict[str, str] | None = None, **extensions: Any) -> Response[dict[str, Any]]:
    """A problem+json response."""
    body: dict[str, Any] = {"type": _TYPE_BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extensions.items() if v is not None})
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


_HTTP_SLUGS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
               405: "method-not-allowed", 413: "request-too-large", 415: "unsupported-media-type",
               429: "too-many-requests", 503: "unavailable"}


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """The app's only exception handler: domain exceptions, Litestar HTTP exceptions, then anything else
    (500, logged with traceback, no internals in the body)."""
    instance = request.url.path
    if isinstance(exc, ApiProblem):
        return problem_response(exc.status, exc.title, exc.detail, exc.slug, instance, exc.headers or None,
                                **exc.extensions)
    if isinstance(exc, HTTPException):
        status = exc.status_code
        slug = _HTTP_SLUGS.get(status, f"http-{status}")
        title = {413: "Request body too large"}.get(status, _title_for(status))
        # no detail that only repeats the title or the status phrase ("Not Found", "Request Entity Too Large")
        detail = exc.detail if exc.detail and exc.detail.lower() not in (title.lower(), _phrase(status)) else None
        extra: dict[str, Any] = {}
        if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
            extra["errors"] = [{"path": str(e.get("key", "")), "line": 0, "column": 0, "code": "E400",
                                "message": str(e.get("message", ""))} for e in exc.extra if isinstance(e, dict)]
        return problem_response(status, title, detail, slug, instance, exc.headers or None, **extra)
    log.exception("unhandled error on %s %s", request.method, instance)
    return problem_response(500, "Internal server error", "see the server log", "internal", instance)


def _phrase(status: int) -> str:
    """The status's reason phrase in lower case ("" for a status unknown to http.HTTPStatus)."""
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return ""


def _title_for(status: int) -> str:
    from http import HTTPStatus

    try:  # sentence case, as the domain problems' titles ("Bad request" whichever layer refused the request)
        phrase = HTTPStatus(status).phrase
        return phrase[0] + phrase[1:].lower()
    except ValueError:
        return f"HTTP {status}"
