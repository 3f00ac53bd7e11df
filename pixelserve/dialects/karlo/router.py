"""Karlo endpoints: parse, translate, call the service, translate back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Request

from pixelserve.core.json_response import JSONResponse
from pixelserve.core.model_config import ModelsConfig
from pixelserve.dialects.karlo import translate
from pixelserve.dialects.karlo.config import KarloConfig
from pixelserve.dialects.karlo.config import load as load_config
from pixelserve.dialects.karlo.protocol import (ErrorBody, InpaintingRequest, KarloResponse, T2IRequest,
                                                VariationsRequest)
from pixelserve.errors import (
    AuthThrottled, BodyTooLarge, Cancelled, EngineFailure, Forbidden, InvalidHeader, InvalidRequest, NotFound,
    NotSupported, PayloadTooLarge, PixelserveError, QuotaExceeded, Unauthorized,
)
from pixelserve.http.deps import Auth, BaseUrl, Service, SettingsDep
from pixelserve.http.route import DialectRoute, client_gone
from pixelserve.service.auth import Caller
from pixelserve.service.pipeline import Pipeline, cancel_on_disconnect
from pixelserve.settings import Settings

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


def karlo_key(auth: Auth, authorization: Annotated[str | None, Header()] = None) -> Caller | None:
    """``Authorization: KakaoAK <key>``."""
    scheme, _, key = (authorization or "").strip().partition(" ")
    if auth.enabled and scheme != "KakaoAK":
        raise Unauthorized("Authorization header must be 'KakaoAK <REST API key>'")
    return auth.check(key.strip())  # DialectRoute checks the Content-Type (application/json)


def karlo_config(request: Request) -> KarloConfig:
    return request.app.state.karlo_config


Key = Annotated[Caller | None, Depends(karlo_key)]
Config = Annotated[KarloConfig, Depends(karlo_config)]


async def _run(request: Request, service: Pipeline, key: Caller | None, body, gen, root: str,
               settings: Settings) -> JSONResponse:
    result = await cancel_on_disconnect(
        client_gone(request),
        service.generate(gen, dialect="karlo", key=key, output=translate.output_options(body)),
    )
    value = translate.image_value(body, lambda im: service.image_url(root, im.storage_key))
    return JSONResponse(translate.result_to_wire(body, result, value, settings.nsfw_threshold))


@router.post("/v2/inference/karlo/t2i", response_model=KarloResponse)
async def t2i(body: T2IRequest, request: Request, key: Key, service: Service, config: Config, root: BaseUrl,
              settings: SettingsDep) -> JSONResponse:
    """Generate image."""
    gen = translate.t2i_to_request(body, config.model_for(body.version))
    return await _run(request, service, key, body, gen, root, settings)


@router.post("/v2/inference/karlo/variations", response_model=KarloResponse)
async def variations(body: VariationsRequest, request: Request, key: Key, service: Service, config: Config,
                     root: BaseUrl, settings: SettingsDep) -> JSONResponse:
    """Make variation."""
    model = service.model_info(config.variations_model(body.version, repaint_faces=body.face_refiner is not None))
    gen = translate.variations_to_request(body, model.id, model.family, service.limits.max_pixels)
    return await _run(request, service, key, body, gen, root, settings)


@router.post("/v2/inference/karlo/inpainting", response_model=KarloResponse)
async def inpainting(body: InpaintingRequest, request: Request, key: Key, service: Service, config: Config,
                     root: BaseUrl, settings: SettingsDep) -> JSONResponse:
    """Modify image (version v2.0 only)."""
    model = service.model_info(config.inpainting_model(body.version))
    translate.check_inpainting_model(body, model.family, model.tasks)
    gen = translate.inpainting_to_request(body, model.id, service.limits.max_pixels)
    return await _run(request, service, key, body, gen, root, settings)


#: How a client points at this dialect ({base}: the server's URL, {key}: an API key), shown at start.
CLIENT_HINT = "Karlo   POST {base}/v2/inference/karlo/t2i      Authorization: KakaoAK {key}"


def mount(app: FastAPI, models: ModelsConfig) -> KarloConfig:
    """Karlo's routes, and its [karlo] table parsed (a bad one fails here, at start)."""
    app.state.client_hints.append(CLIENT_HINT)
    app.state.karlo_config = load_config(models)
    app.include_router(router)
    return app.state.karlo_config
