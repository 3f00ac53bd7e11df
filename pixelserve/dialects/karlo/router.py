"""Karlo endpoints: parse, translate, call the service, translate back."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request

from pixelserve.core.json_response import JSONResponse
from pixelserve.db.crud.keys import KeyInfo
from pixelserve.dialects.base import DialectRoute, client_gone
from pixelserve.dialects.karlo import translate
from pixelserve.dialects.karlo.protocol import (ErrorBody, InpaintingRequest, KarloResponse, T2IRequest,
                                                VariationsRequest)
from pixelserve.errors import (
    AuthThrottled, BodyTooLarge, Cancelled, EngineFailure, Forbidden, InvalidHeader, InvalidRequest, NotFound,
    NotSupported, PayloadTooLarge, PixelserveError, QuotaExceeded, Unauthorized,
)
from pixelserve.routes.deps import base_url, get_auth, get_service
from pixelserve.service.generation import GenerationService, cancel_on_disconnect

# Kakao's "Common" error codes, with the HTTP status Kakao answers them with (None: errors.STATUS's).
KAKAO_CODES: list[tuple[type[PixelserveError], int, int | None]] = [
    (InvalidHeader, -8, 400),  # a wrong Content-Type included
    # Kakao documents no status for a body over the server's limit; it is the HTTP-level 413 a
    # front proxy would answer, with Kakao's "parameter out of range" code.
    (BodyTooLarge, -2, 413),
    (InvalidRequest, -2, 400),
    (PayloadTooLarge, -2, 400),
    (NotFound, -2, 400),
    (Unauthorized, -401, 401),
    (Forbidden, -5, 403),
    (NotSupported, -3, 403),  # "the feature is not enabled for this app"
    (AuthThrottled, -10, 429),  # failed authentications: the HTTP status clients back off on
    (QuotaExceeded, -10, 400),
    (Cancelled, -1, None),
    (EngineFailure, -1, None),
]


class KarloRoute(DialectRoute):
    error_model = ErrorBody

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
    return auth.check(key.strip())  # DialectRoute checks the Content-Type (application/json)


def model_for(request: Request, version: str) -> str:
    model_id = request.app.state.settings.models.karlo.get(version)
    if model_id is None:
        raise NotSupported(f"Karlo {version} is not configured on this server")
    return model_id


async def _run(request: Request, service: GenerationService, key: KeyInfo | None, body, gen) -> JSONResponse:
    result = await cancel_on_disconnect(
        client_gone(request),
        service.generate(gen, dialect="karlo", key=key, output=translate.output_options(body)),
    )
    root = base_url(request)
    if body.return_type == "url":
        value = lambda im: service.image_url(root, im.storage_key)  # noqa: E731
    else:
        value = lambda im: base64.b64encode(im.data).decode("ascii")  # noqa: E731
    threshold = request.app.state.settings.nsfw_threshold
    return JSONResponse(translate.result_to_wire(body, result, value, threshold))


Key = Annotated[KeyInfo | None, Depends(karlo_key)]
Service = Annotated[GenerationService, Depends(get_service)]


@router.post("/v2/inference/karlo/t2i", response_model=KarloResponse)
async def t2i(body: T2IRequest, request: Request, key: Key, service: Service) -> JSONResponse:
    """Generate image."""
    gen = translate.t2i_to_request(body, model_for(request, body.version))
    return await _run(request, service, key, body, gen)


@router.post("/v2/inference/karlo/variations", response_model=KarloResponse)
async def variations(body: VariationsRequest, request: Request, key: Key, service: Service) -> JSONResponse:
    """Make variation."""
    model = service.model_info(model_for(request, body.version))
    gen = translate.variations_to_request(body, model.id, model.family, service.limits.max_pixels)
    return await _run(request, service, key, body, gen)


@router.post("/v2/inference/karlo/inpainting", response_model=KarloResponse)
async def inpainting(body: InpaintingRequest, request: Request, key: Key, service: Service) -> JSONResponse:
    """Modify image (version v2.0 only)."""
    karlo = request.app.state.settings.models.karlo
    model = service.model_info(karlo.get("inpainting") or model_for(request, body.version))
    if "inpaint" not in model.tasks:
        raise NotSupported(f"the model serving Karlo {body.version} ({model.family}) cannot inpaint")
    gen = translate.inpainting_to_request(body, model.id, service.limits.max_pixels)
    return await _run(request, service, key, body, gen)
