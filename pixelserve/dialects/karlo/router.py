"""Karlo endpoints: parse, translate, call the service, translate back."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from pixelserve.db.crud.keys import KeyInfo
from pixelserve.dialects.base import DialectRoute
from pixelserve.dialects.karlo import translate
from pixelserve.dialects.karlo.protocol import T2IRequest, T2IResponse
from pixelserve.errors import (
    Cancelled, EngineFailure, Forbidden, InvalidRequest, NotFound, NotSupported, PayloadTooLarge,
    PixelserveError, QuotaExceeded, Unauthorized,
)
from pixelserve.routes.deps import base_url, get_auth, get_service
from pixelserve.service.generation import GenerationService, cancel_on_disconnect

# Kakao's "Common" error codes, with the HTTP status Kakao answers them with.
KAKAO_CODES: list[tuple[type[PixelserveError], int, int | None]] = [
    (InvalidRequest, -2, 400),
    (PayloadTooLarge, -2, 400),
    (NotFound, -2, 400),
    (Unauthorized, -401, 401),
    (Forbidden, -5, 403),
    (NotSupported, -3, 403),  # "the feature is not enabled for this app"
    (QuotaExceeded, -10, 400),
    (Cancelled, -1, None),
    (EngineFailure, -1, None),
]


class KarloRoute(DialectRoute):
    @classmethod
    def render(cls, exc: PixelserveError, status: int) -> JSONResponse:
        code, http = -1, None
        for exc_type, c, s in KAKAO_CODES:
            if isinstance(exc, exc_type):
                code, http = c, s
                break
        else:
            if status == 503:
                code = -7  # "service under maintenance or internal problem"; keep 503 for retries
        return JSONResponse({"code": code, "msg": str(exc)}, status_code=http or status)


router = APIRouter(route_class=KarloRoute, tags=["Karlo"])


def karlo_key(request: Request, authorization: Annotated[str | None, Header()] = None) -> KeyInfo | None:
    """``Authorization: KakaoAK <key>``."""
    auth = get_auth(request)
    scheme, _, key = (authorization or "").strip().partition(" ")
    if auth.enabled and scheme != "KakaoAK":
        raise Unauthorized("Authorization header must be 'KakaoAK <REST API key>'")
    return auth.check(key.strip())


def model_for(request: Request, version: str) -> str:
    model_id = request.app.state.settings.models.karlo.get(version)
    if model_id is None:
        raise NotSupported(f"Karlo {version} is not configured on this server")
    return model_id


@router.post("/v2/inference/karlo/t2i", response_model=T2IResponse, response_model_exclude_none=False)
async def t2i(
    body: T2IRequest,
    request: Request,
    key: Annotated[KeyInfo | None, Depends(karlo_key)],
    service: Annotated[GenerationService, Depends(get_service)],
) -> JSONResponse:
    """Generate image."""
    gen = translate.t2i_to_request(body, model_for(request, body.version))
    result = await cancel_on_disconnect(
        request.is_disconnected,
        service.generate(gen, dialect="karlo", key=key, output=translate.output_options(body)),
    )
    root = base_url(request)
    if body.return_type == "url":
        value = lambda im: service.image_url(root, im.storage_key)  # noqa: E731
    else:
        value = lambda im: base64.b64encode(im.data).decode("ascii")  # noqa: E731
    return JSONResponse(translate.result_to_wire(body, result, value))
