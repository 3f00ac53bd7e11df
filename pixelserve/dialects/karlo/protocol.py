"""Karlo wire models: the vendor's field names, order, ranges and defaults.

Source: Kakao Developers, Karlo REST API (shared/specs/karlo-rest-api.txt), "Generate image".
Anything we add is marked ``# not in Karlo spec``. Each request model lists its endpoint's table
in the spec's order (so the OpenAPI docs read like the vendor's), which repeats the shared fields;
their types and ranges are the shared aliases below.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from pixelserve.core.request import MAX_SEED
from pixelserve.http.body import nfc

#: version -> (min, max) of width and height; both must be multiples of 8.
SIZE_LIMITS = {"v2.1": (768, 1280), "v2.0": (384, 640)}
#: version -> schedulers allowed (first is the default).
SCHEDULERS = {
    "v2.1": ("decoder_ddim_v_prediction",),
    "v2.0": ("decoder_ddim_v_prediction", "decoder_ddpm_v_prediction"),
}


class KarloModel(BaseModel):
    # strict: "5" is not 5, 1 is not true (Kakao: "wrong type" is error -2); unknown fields ignored.
    model_config = ConfigDict(strict=True, extra="ignore")


class FaceRefiner(KarloModel):
    bbox_size_threshold: float = Field(1, ge=0, le=1)
    bbox_filter_threshold: float = Field(1, ge=0, le=1)
    restoration_repeats: float = Field(2, ge=1, le=10)
    weight_sft: float = Field(0.5, ge=0, le=1)


def check_size(version: str, width: int, height: int) -> None:
    lo, hi = SIZE_LIMITS[version]
    for name, v in (("width", width), ("height", height)):
        if not lo <= v <= hi or v % 8:
            raise ValueError(f"{name} must be a multiple of 8 from {lo} to {hi} for {version}, got {v}")


def check_scheduler(version: str, scheduler: str | None) -> None:
    allowed = SCHEDULERS[version]
    if scheduler is not None and scheduler not in allowed:
        raise ValueError(f"scheduler must be one of {', '.join(allowed)} for {version}")


def check_seed(seed: list[int] | None, samples: int) -> None:
    if seed is None:
        return
    if len(seed) != samples:
        raise ValueError(f"seed must have one value per sample ({samples}), got {len(seed)}")
    if any(not 0 <= s <= MAX_SEED for s in seed):
        raise ValueError(f"seed values must be 0 to {MAX_SEED}")


#: Any version's size bounds (the version's own range is checked by check_size); in the schema so
#: that clients and fuzzers see them.
Side = Annotated[int, Field(ge=384, le=1280, multiple_of=8)]
Seeds = Annotated[list[Annotated[int, Field(ge=0, le=MAX_SEED)]], Field(min_length=1, max_length=8)]
Scheduler = Annotated[Literal["decoder_ddim_v_prediction", "decoder_ddpm_v_prediction"], BeforeValidator(nfc)]
#: A 64x64 PNG, and a mask of it whose left half is black (the area to regenerate): schema examples.
EXAMPLE_IMAGE = ("iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAUUlEQVR42u3PMQ0AMAgAMJhMNCEMWVPBQdI6aFZPXPbiOAEBAQE"
                 "BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAYF9H01pAi5f/9loAAAAAElFTkSuQmCC")
EXAMPLE_MASK = ("iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAAAAACPAi4CAAAAL0lEQVR42u3MoQ0AAAjAMOD/n+EEBAbR2SXNWOrlVxwDAAAAAAAAAAAAAA"
                "AA8B0YME0Bf4GC+EEAAAAASUVORK5CYII=")
Prompt = Annotated[str, Field(max_length=2048)]
Scale = Literal[2, 4]
ImageFormat = Literal["webp", "jpeg", "png"]
Quality = Annotated[int, Field(ge=1, le=100)]
Samples = Annotated[int, Field(ge=1, le=8)]
ReturnType = Literal["base64_string", "url"]
PriorSteps = Annotated[int, Field(ge=10, le=100)]
Steps = Annotated[int, Field(ge=10, le=100)]
Guidance = Annotated[float, Field(ge=1.0, le=20.0)]


class T2IRequest(KarloModel):
    """Generate image: POST /v2/inference/karlo/t2i."""

    version: Literal["v2.1", "v2.0"]
    prompt: Annotated[str, Field(min_length=1, max_length=2048)]
    negative_prompt: Prompt | None = None
    width: Side
    height: Side
    upscale: bool = False
    scale: Scale = 2
    image_format: ImageFormat = "webp"
    image_quality: Quality = 70
    samples: Samples = 1
    return_type: ReturnType = "url"
    prior_num_inference_steps: PriorSteps = 25
    prior_guidance_scale: Guidance = 5.0
    num_inference_steps: Steps = 50
    guidance_scale: Guidance = 5.0
    scheduler: Scheduler | None = None
    seed: Seeds | None = None
    nsfw_checker: bool = False
    face_refiner: FaceRefiner | None = None

    @model_validator(mode="after")
    def _version_dependent(self) -> "T2IRequest":
        check_size(self.version, self.width, self.height)
        check_scheduler(self.version, self.scheduler)
        check_seed(self.seed, self.samples)
        return self


class VariationsRequest(KarloModel):
    """Make variation: POST /v2/inference/karlo/variations."""

    version: Literal["v2.1", "v2.0"]
    image: str = Field(examples=[EXAMPLE_IMAGE])  # base64 of a JPG, PNG or WebP file, 2 MB or less, up to 2048 px a side
    width: Side
    height: Side
    upscale: bool = False
    scale: Scale = 2
    image_format: ImageFormat = "webp"
    image_quality: Quality = 70
    samples: Samples = 1
    return_type: ReturnType = "url"
    num_inference_steps: Steps = 50
    guidance_scale: Guidance = 5.0
    scheduler: Scheduler | None = None
    seed: Seeds | None = None
    nsfw_checker: bool = False
    face_refiner: FaceRefiner | None = None

    @model_validator(mode="after")
    def _version_dependent(self) -> "VariationsRequest":
        check_size(self.version, self.width, self.height)
        check_scheduler(self.version, self.scheduler)
        check_seed(self.seed, self.samples)
        return self


class InpaintingRequest(KarloModel):
    """Modify image: POST /v2/inference/karlo/inpainting (version v2.0 only)."""

    version: Literal["v2.1", "v2.0"] = "v2.0"
    # The field table marks prompt required, but the spec's own Python sample sends none.
    prompt: Prompt = ""
    negative_prompt: Prompt | None = None
    image: str = Field(examples=[EXAMPLE_IMAGE])  # base64 of a webp, png, jpeg or heic file, up to 1024 px a side
    mask: str = Field(examples=[EXAMPLE_MASK])  # base64; black (value 0) marks the area to regenerate
    reference_image: str | None = None
    upscale: bool = False
    scale: Scale = 2
    image_format: ImageFormat = "webp"
    image_quality: Quality = 70
    samples: Samples = 1
    return_type: ReturnType = "url"
    prior_num_inference_steps: PriorSteps = 25
    prior_guidance_scale: Guidance = 5.0
    num_inference_steps: Steps = 50
    guidance_scale: Guidance = 5.0
    seed: Seeds | None = None
    nsfw_checker: bool = False
    face_refiner: FaceRefiner | None = None

    @model_validator(mode="after")
    def _version_dependent(self) -> "InpaintingRequest":
        if self.version != "v2.0":
            raise ValueError(f"version: inpainting is available with version v2.0 only, got {self.version}")
        check_seed(self.seed, self.samples)
        return self


class Image(BaseModel):
    id: str
    seed: int
    image: str
    nsfw_content_detected: bool | None = None
    nsfw_score: float | None = None


class KarloResponse(BaseModel):
    id: str
    model_version: str
    images: list[Image]


class ErrorBody(BaseModel):
    code: int
    msg: str
