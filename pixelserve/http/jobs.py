"""The jobs API, the same for every dialect's jobs: a job's status, the caller's jobs, cancelling one,
and its progress as Server-Sent Events (http/job_events.py).

The API key goes the way any dialect sends it: ``Authorization: Bearer <key>`` (or any other scheme,
``KakaoAK <key>`` included) or ``X-Api-Key: <key>``. A job is addressed by the id its caller knows:
its own ``X-Job-Id``, or the server's id the answer carried. Only the key that created a job sees
it; any other job is 404, exactly like one that does not exist. Errors answer
``{"error": {"message": "...", "type": "not_found", "status": 404}}``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from pixelserve.core.json_response import JSONResponse
from pixelserve.errors import PixelserveError, Unauthorized
from pixelserve.http.deps import Auth, BaseUrl, Service
from pixelserve.http.job_events import events_response
from pixelserve.http.route import DialectRoute
from pixelserve.service.auth import Caller
from pixelserve.service.auth_limits import credential_of
from pixelserve.service.job_status import JobQueries, view

#: Jobs per page of GET /v1/jobs, at most.
MAX_PAGE = 100


class ErrorDetail(BaseModel):
    message: str
    type: str  # not_found, unauthorized, conflict, invalid_request, ...
    status: int


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_type(exc: PixelserveError) -> str:
    """``NotFound`` -> ``not_found``."""
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_") or "error"


class JobsRoute(DialectRoute):
    error_model = ErrorBody

    @classmethod
    def render(cls, exc: PixelserveError, status: int) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if type(exc) is PixelserveError:
            kind = "internal_error" if status >= 500 else "error"
        else:
            kind = error_type(exc)
        return JSONResponse({"error": {"message": str(exc), "type": kind, "status": status}}, status_code=status,
                            headers=headers)


router = APIRouter(route_class=JobsRoute, tags=["jobs"])


def jobs_key(request: Request, auth: Auth) -> Caller | None:
    """The key from ``Authorization: <scheme> <key>`` or ``X-Api-Key``, whichever the client's dialect uses."""
    key = credential_of(request.headers.get("authorization"), request.headers.get("x-api-key"))
    if auth.enabled and not key:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'")
    return auth.check(key)


def get_jobs(request: Request) -> JobQueries:
    return request.app.state.jobs


Key = Annotated[Caller | None, Depends(jobs_key)]
Jobs = Annotated[JobQueries, Depends(get_jobs)]


class Image(BaseModel):
    url: str  # signed, expiring
    seed: int


class JobStatus(BaseModel):
    id: str
    status: str  # queued | running | succeeded | failed | cancelled
    queue_position: int | None  # jobs ahead of it, while queued
    step: int | None
    steps: int | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    eta_seconds: float | None  # while running: the steps left at the mean step time so far
    error: str | None
    images: list[Image]


class JobList(BaseModel):
    data: list[JobStatus]
    has_more: bool  # another page: ask again with before=<the last id here>


def caller_id(key: Caller | None) -> int | None:
    return key.id if key is not None else None


@router.get("/v1/jobs", response_model=JobList)
async def list_jobs(key: Key, jobs: Jobs, service: Service, base: BaseUrl,
                    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
                    before: Annotated[str | None, Query(min_length=1, max_length=64)] = None) -> dict:
    """The caller's jobs, newest first. ``before``: a job's id (the last of the previous page): the
    page of older jobs after it."""
    records = await asyncio.to_thread(jobs.list, caller_id(key), limit + 1, before)
    url = lambda storage_key: service.image_url(base, storage_key)  # noqa: E731
    page = [view(r, jobs.stream.log(r.id), url) for r in records[:limit]]
    return {"data": page, "has_more": len(records) > limit}


@router.get("/v1/jobs/{job_id}", response_model=JobStatus)
async def get_job(job_id: str, key: Key, jobs: Jobs, service: Service, base: BaseUrl) -> dict:
    """A job of the caller's: its status, progress, and images once it succeeded."""
    record = await asyncio.to_thread(jobs.find, caller_id(key), job_id)
    return view(record, jobs.stream.log(record.id), lambda k: service.image_url(base, k))


@router.delete("/v1/jobs/{job_id}", response_model=JobStatus,
               responses={202: {"model": JobStatus, "description": "Cancelling; not stopped yet"}})
async def cancel_job(job_id: str, key: Key, jobs: Jobs, service: Service, base: BaseUrl) -> JSONResponse:
    """Cancels a queued or running job of the caller's: it stops before its next step and nothing is
    charged. 200 once it has stopped (status ``cancelled``); 202 if it had not within a few seconds;
    409 when it had already ended."""
    record, ended = await jobs.cancel(caller_id(key), job_id)
    body = view(record, jobs.stream.log(record.id), lambda k: service.image_url(base, k))
    return JSONResponse(body, status_code=200 if ended else 202)


@router.get("/v1/jobs/{job_id}/events", response_class=Response, responses={
    200: {"content": {"text/event-stream": {}}, "description": "The job's events"},
    204: {"description": "The stream had already sent the job's final event (Last-Event-ID)"}})
async def job_events(request: Request, job_id: str, key: Key, jobs: Jobs, service: Service, base: BaseUrl,
                     preview: bool = False) -> Response:
    """Server-Sent Events: ``queued``, ``started``, ``progress``, ``preview`` (with ``?preview=true``),
    then one of ``finished``, ``failed``, ``cancelled``, after which the stream ends. Each has an
    ``id:``; reconnecting with ``Last-Event-ID`` sends only the events after it."""
    record = await asyncio.to_thread(jobs.find, caller_id(key), job_id)
    return events_response(jobs, record, caller_id(key), request.headers.get("last-event-id"), preview,
                           lambda k: service.image_url(base, k))
