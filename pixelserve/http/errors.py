"""Turning what FastAPI refuses into the domain errors a dialect renders (errors.py has the table)."""

from __future__ import annotations

from http import HTTPStatus

from fastapi.exceptions import RequestValidationError

from pixelserve.errors import Forbidden, InvalidRequest, NotFound, PayloadTooLarge, PixelserveError, Unauthorized

#: HTTP errors FastAPI raises itself, as the domain errors a dialect renders.
FRAMEWORK_ERRORS: dict[int, type[PixelserveError]] = {
    400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 413: PayloadTooLarge,
}


def validation_message(exc: RequestValidationError) -> InvalidRequest:
    """The first validation error as one readable message naming the field."""
    errors = exc.errors()
    if not errors:
        return InvalidRequest("invalid request")
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
    field = ".".join(loc) or None
    msg = first.get("msg", "invalid value")
    if first.get("type") == "json_invalid":
        return InvalidRequest("body is not valid JSON")
    if not field and first.get("type") in ("model_attributes_type", "dict_type", "model_type"):
        return InvalidRequest("body must be a JSON object")
    if first.get("type") == "missing":
        msg = "is required"
    return InvalidRequest(msg.removeprefix("Value error, "), field=field)


def phrase(status: int) -> str:
    """The reason phrase of an HTTP status (499, nginx's "client closed request", included)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Client Closed Request" if status == 499 else "Error"
