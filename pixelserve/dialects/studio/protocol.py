"""Studio wire models: the platform's field names, order, ranges and defaults.

Source: ``POST /api/images/create`` (shared/specs/studio-images-create.txt). Anything we add is
marked ``# not in Studio spec``. Strict types: "4" is not 4, 1 is not true. Unknown body fields
are refused (a typo such as "samples" must not silently cost four images).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from pixelserve.core.request import SCHEDULERS
from pixelserve.http.body import nfc, not_blank
from pixelserve.service.studio import REFERENCE_PATH  # the service mints (upload) and resolves these paths

#: Record ids (images, styles, collections): database integers, so bounded like one.
MAX_ID = 2**63 - 1
RecordId = Annotated[int, Path(ge=1, le=MAX_ID)]  # not in Studio spec (our routes' path ids)

#: X-Platform values (default web).
PLATFORMS = ("web", "app", "figma", "api")
RATIOS = ("square", "vertical", "horizontal", "1:1", "3:4", "4:3", "9:16", "16:9")
#: The named ratios are the presets of the numeric ones.
RATIO_ALIASES = {"square": "1:1", "vertical": "3:4", "horizontal": "4:3"}
#: ratio -> "WxH" per model family: each family's native area, sides rounded to multiples of 8
#: (SDXL's are its training buckets). settings.studio_resolutions overrides entries.
RESOLUTIONS: dict[str, dict[str, str]] = {
    "sdxl": {"1:1": "1024x1024", "3:4": "896x1152", "4:3": "1152x896", "9:16": "768x1344", "16:9": "1344x768"},
    "sd": {"1:1": "512x512", "3:4": "512x688", "4:3": "688x512", "9:16": "512x912", "16:9": "912x512"},
    # Karlo's unCLIP decoder draws 64 px upsampled to 256: keep its area, shape the sides.
    "unclip": {"1:1": "256x256", "3:4": "224x296", "4:3": "296x224", "9:16": "192x344", "16:9": "344x192"},
}
SCALE_SIZES = ("1x", "2x", "4x", "8x")

OptionalText = Annotated[str | None, Field(None, max_length=4000)]  # not in Studio spec: a bound


class StudioModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)


class CreateRequest(StudioModel):
    """(Reference Image + Prompt) OR (Style + Prompt) OR (Collection ID + Prompt)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"prompt": "유니콘이 인간 그룹과 뛰어놀고 있다", "image": "1/reference-1423131.png", "ratio": "1:1"},  # the spec's
        {"prompt": "a unicorn playing with a group of people", "styleId": 1, "ratio": "1:1", "sample": 1},
    ]})

    prompt: Annotated[str, AfterValidator(not_blank)] = Field(..., min_length=1, max_length=1200)
    ratio: Literal[RATIOS]  # type: ignore[valid-type]
    image: str | None = Field(None, max_length=300)
    randomPrompt: OptionalText = None
    initialPrompt: OptionalText = None
    enhancedPrompt: OptionalText = None
    captionPrompt: OptionalText = None
    captionTPrompt: OptionalText = None
    groupId: str | None = Field(None, max_length=200)
    sample: Literal[1, 2, 4] = 4
    async_: bool = Field(False, alias="async")
    styleId: int | None = Field(None, ge=1, le=MAX_ID)  # not in Studio spec
    collectionId: int | None = Field(None, ge=1, le=MAX_ID)  # not in Studio spec
    # Where the job's end is POSTed (signed; see README "Webhooks"); same as the X-Webhook-URL header.
    webhook_url: str | None = Field(None, min_length=1, max_length=2048)  # not in Studio spec

    @model_validator(mode="after")
    def _one_source(self) -> "CreateRequest":
        given = [name for name in ("image", "styleId", "collectionId") if getattr(self, name) is not None]
        if len(given) != 1:
            what = "none was given" if not given else f"got {' and '.join(given)}"
            raise ValueError(f"exactly one of image, styleId, collectionId is required with the prompt; {what}")
        return self


class UpscaleRequest(StudioModel):  # not in Studio spec (the Upscaled[] records' endpoint)
    scaleSize: Literal[SCALE_SIZES]  # type: ignore[valid-type]


class StyleLora(StudioModel):  # not in Studio spec
    """A LoRA a style applies: the asset of that name in the asset library, the caller's own first,
    else the public one (404 unknown or not ready, 400 not for the model's family; see __init__)."""

    name: str = Field(..., min_length=1, max_length=200)
    weight: float = Field(1.0, ge=0, le=2)


class StyleBody(StudioModel):  # not in Studio spec
    name: str = Field(..., min_length=1, max_length=100)
    promptTemplate: str = Field("{prompt}", min_length=1, max_length=2000)
    negativePrompt: str | None = Field(None, max_length=2000)
    sampler: Annotated[Literal[SCHEDULERS], BeforeValidator(nfc)] | None = None  # type: ignore[valid-type]
    steps: int | None = Field(None, ge=1, le=150)
    cfgScale: float | None = Field(None, ge=0, le=30)
    lora: StyleLora | None = None

    @field_validator("promptTemplate")
    @classmethod
    def _has_slot(cls, v: str) -> str:
        if "{prompt}" not in v:
            raise ValueError("must contain {prompt}, where the request's prompt goes")
        return v


class CollectionBody(StudioModel):  # not in Studio spec
    name: str = Field(..., min_length=1, max_length=100)
    styleId: int | None = Field(None, ge=1, le=MAX_ID)
    images: list[Annotated[str, Field(pattern=REFERENCE_PATH)]] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _something(self) -> "CollectionBody":
        if not self.images and self.styleId is None:
            raise ValueError("a collection needs reference images, a styleId, or both")
        return self


# -- responses (documented in the OpenAPI schema; the routes build them in translate.py) ---------
class UserImage(BaseModel):
    userId: int
    imageId: int


class CollectionInfo(BaseModel):
    enabled: bool


class UpscaledImage(BaseModel):
    DownloadLog: list[UserImage]
    CollectionInfo: CollectionInfo


class Upscaled(BaseModel):
    imageId: int
    type: str
    scaleSize: list[Literal[SCALE_SIZES]]  # type: ignore[valid-type]
    generationStatus: str  # not in Studio spec
    Image: UpscaledImage


class GenerationInfo(BaseModel):
    originalPrompt: str | None
    super: str | None
    main: str | None
    variationId: int | None
    groupId: str | None
    blurReason: str | None
    # not in Studio spec: the other prompt fields as sent, and where "main" came from
    promptSource: str | None = None
    style: str | None = None
    randomPrompt: str | None = None
    initialPrompt: str | None = None
    enhancedPrompt: str | None = None
    captionPrompt: str | None = None
    captionTPrompt: str | None = None


class ImageRecord(BaseModel):
    imageId: int
    createdAt: str
    generationStatus: Literal["PENDING", "IN_PROGRESS", "COMPLETED", "FAILED"]
    generationError: str | None
    resolution: str
    ownerId: int
    etc: str
    bookmarked: bool
    base64: str | None
    mimeType: str
    Bought: list
    Bookmarks: list[UserImage]
    Upscaled: list[Upscaled]
    GenerationInfo: GenerationInfo


class Credits(BaseModel):
    defaultCredit: int
    dailyCredit: int
    monthlyCredit: int


class ImagesResponse(Credits):
    images: list[ImageRecord]


class UploadResponse(BaseModel):  # not in Studio spec
    path: str


class StyleOut(BaseModel):  # not in Studio spec
    id: int
    name: str
    builtIn: bool
    ownerId: int | None
    promptTemplate: str
    negativePrompt: str | None
    sampler: str | None
    steps: int | None
    cfgScale: float | None


class StylesResponse(BaseModel):  # not in Studio spec
    styles: list[StyleOut]


class CollectionOut(BaseModel):  # not in Studio spec
    id: int
    name: str
    ownerId: int
    styleId: int | None
    images: list[str]


class CollectionsResponse(BaseModel):  # not in Studio spec
    collections: list[CollectionOut]


class ErrorBody(BaseModel):
    """NestJS's error shape; a 402 adds the caller's three balances."""

    statusCode: int
    message: str
    error: str
    defaultCredit: int | None = None
    dailyCredit: int | None = None
    monthlyCredit: int | None = None
