"""Karlo wire models: the vendor's field names, order, ranges and defaults.

Source: Kakao Developers, Karlo REST API (shared/specs/karlo-rest-api.txt), "Generate image".
Anything we add is marked ``# not in Karlo spec``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_SEED = 4_294_967_295

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


class T2IRequest(KarloModel):
    version: Literal["v2.1", "v2.0"]
    prompt: str = Field(min_length=1, max_length=2048)
    negative_prompt: str | None = Field(None, max_length=2048)
    width: int
    height: int
    upscale: bool = False
    scale: Literal[2, 4] = 2
    image_format: Literal["webp", "jpeg", "png"] = "webp"
    image_quality: int = Field(70, ge=1, le=100)
    samples: int = Field(1, ge=1, le=8)
    return_type: Literal["base64_string", "url"] = "url"
    prior_num_inference_steps: int = Field(25, ge=10, le=100)
    prior_guidance_scale: float = Field(5.0, ge=1.0, le=20.0)
    num_inference_steps: int = Field(50, ge=10, le=100)
    guidance_scale: float = Field(5.0, ge=1.0, le=20.0)
    scheduler: str | None = None
    seed: list[int] | None = None
    nsfw_checker: bool = False
    face_refiner: FaceRefiner | None = None

    @model_validator(mode="after")
    def _version_dependent(self) -> "T2IRequest":
        lo, hi = SIZE_LIMITS[self.version]
        for name in ("width", "height"):
            v = getattr(self, name)
            if not lo <= v <= hi or v % 8:
                raise ValueError(f"{name} must be a multiple of 8 from {lo} to {hi} for {self.version}, got {v}")
        allowed = SCHEDULERS[self.version]
        if self.scheduler is not None and self.scheduler not in allowed:
            raise ValueError(f"scheduler must be one of {', '.join(allowed)} for {self.version}")
        if self.seed is not None:
            if len(self.seed) != self.samples:
                raise ValueError(f"seed must have one value per sample ({self.samples}), got {len(self.seed)}")
            if any(not 0 <= s <= MAX_SEED for s in self.seed):
                raise ValueError(f"seed values must be 0 to {MAX_SEED}")
        return self


class Image(BaseModel):
    id: str
    seed: int
    image: str
    nsfw_content_detected: bool | None = None
    nsfw_score: float | None = None


class T2IResponse(BaseModel):
    id: str
    model_version: str
    images: list[Image]


class ErrorBody(BaseModel):
    code: int
    msg: str
