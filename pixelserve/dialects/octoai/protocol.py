"""OctoAI wire models: the vendor's field names, order, ranges and defaults.

Sources: the Image Gen REST API page (shared/specs/octoai-image-gen.txt, "Image Generation
Arguments", whose order the request follows), then the fields and ranges OctoAI's published SDK
(octoai 1.11.0) adds; asset-library shapes from the same SDK (shared/specs/README.md). Ranges the
vendor does not state are ours and marked ``# our bound``; fields we add are marked
``# not in OctoAI spec``. ``null`` means "the default" for every field, as the SDK sends it.
NaN and infinities are refused everywhere.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from pixelserve.core.request import MAX_SEED
from pixelserve.http.body import nfc, not_blank
from pixelserve.dialects.octoai.styles import STYLES
from pixelserve.service.asset_refs import ASSET_NAME

#: engine id -> the model family it serves.
ENGINE_FAMILIES = {"sdxl": "sdxl", "sd": "sd", "controlnet-sdxl": "sdxl", "controlnet-sd15": "sd"}
ENGINES = tuple(ENGINE_FAMILIES)
#: engine id -> its (width, height) list (the doc's "Supported Output Resolutions") and default size.
SDXL_SIZES = ((1024, 1024), (896, 1152), (832, 1216), (768, 1344), (640, 1536), (1536, 640), (1344, 768),
              (1216, 832), (1152, 896))
SD15_SIZES = ((512, 512), (640, 512), (768, 512), (512, 704), (512, 768), (576, 768), (640, 768), (576, 1024),
              (1024, 576))
SIZES = {"sdxl": SDXL_SIZES, "controlnet-sdxl": SDXL_SIZES, "sd": SD15_SIZES, "controlnet-sd15": SD15_SIZES}
DEFAULT_SIZE = {"sdxl": 1024, "controlnet-sdxl": 1024, "sd": 512, "controlnet-sd15": 512}

#: The SDK's 21 sampler names -> core.request.SCHEDULERS (core/samplers.py: the class and options each builds, with
#: from_config). The K_ names are k-diffusion's: diffusers' discrete schedulers implement the same
#: algorithms; Karras variants use Karras sigmas. HEUN and K_HEUN are the same diffusers scheduler.
SAMPLERS = {
    "PNDM": "pndm", "LMS": "lms", "KLMS": "lms_karras", "DDIM": "ddim", "DDPM": "ddpm", "HEUN": "heun",
    "K_HEUN": "heun", "K_EULER": "euler", "K_EULER_ANCESTRAL": "euler_a", "DPM_SOLVER_MULTISTEP": "dpm++_2m",
    "DPM_PLUS_PLUS_2M_KARRAS": "dpm++_2m_karras", "DPM_PLUS_PLUS_2M_SDE": "dpm++_2m_sde",
    "DPM_PLUS_PLUS_2M_SDE_KARRAS": "dpm++_2m_sde_karras", "DPM_SINGLE": "dpm_single", "DPM_2": "dpm2",
    "DPM_2_KARRAS": "dpm2_karras", "DPM_2_ANCESTRAL": "dpm2_a", "DPM_2_ANCESTRAL_KARRAS": "dpm2_a_karras",
    "DPM_PLUS_PLUS_SDE_KARRAS": "dpm++_sde_karras", "UNI_PC": "unipc", "LCM": "lcm",
}

Sampler = Annotated[Literal[tuple(SAMPLERS)], BeforeValidator(nfc)]  # type: ignore[valid-type]
StylePreset = Annotated[Literal[tuple(STYLES)], BeforeValidator(nfc)]  # type: ignore[valid-type]
Text = Annotated[str, Field(max_length=4000)]  # our bound (the token limit is checked by the engine)
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
AssetRef = Annotated[str, Field(min_length=1, max_length=120)]  # "name" or "octoai:name"
TriggerWord = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S+$")]


class OctoModel(BaseModel):
    # Lax types as the vendor's own FastAPI server parses them; unknown fields ignored.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k not in cls.model_fields
                    or cls.model_fields[k].default is None}
        return data


class ImageGenerationRequest(OctoModel):
    """POST /generate/{engine_id}."""

    prompt: Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(not_blank)]
    prompt_2: Text | None = None  # SDXL only; None copies prompt
    negative_prompt: Text | None = None
    negative_prompt_2: Text | None = None  # SDXL only
    sampler: Sampler = "DDIM"
    height: Annotated[int, Field(ge=1, le=4096)] | None = None  # None: 1024 SDXL, 512 SD 1.5; SIZES checked
    width: Annotated[int, Field(ge=1, le=4096)] | None = None
    cfg_scale: float = Field(12, gt=0, le=50)  # SDK: positive, at most 50
    steps: int = Field(30, ge=1, le=200)  # SDK: greater than 0, at most 200
    num_images: int = Field(1, ge=1, le=16)  # our bound
    seed: Seed | list[Seed | None] | None = None  # SDK: an int, or one int-or-null per image
    use_refiner: bool | None = None  # SDXL only; None: the refiner when one is configured
    # SDXL only. SDK: 0 to 1; the ends are refused: they leave the base or the refiner no step to run.
    high_noise_frac: float = Field(0.8, gt=0, lt=1)
    checkpoint: AssetRef | None = None
    loras: dict[AssetRef, Annotated[float, Field(ge=-2, le=2)] | None] | None = Field(None, max_length=8)  # our bounds
    textual_inversions: dict[AssetRef, TriggerWord | None] | None = Field(None, max_length=8)  # our bound
    vae: AssetRef | None = None
    style_preset: StylePreset | None = None
    init_image: str | None = None  # base64
    strength: float = Field(0.8, gt=0, le=1)  # SDK: greater than 0, at most 1
    mask_image: str | None = None  # base64; white = the area to paint (SDK)
    outpainting: bool = False
    transfer_images: dict[TriggerWord, Annotated[list[str], Field(min_length=1, max_length=4)]] | None = Field(
        None, max_length=1)  # our bounds: one trigger word, 1-4 images
    controlnet: AssetRef | None = None
    controlnet_conditioning_scale: float = Field(1, ge=0, le=2)  # our bound
    controlnet_early_stop: float = Field(1, gt=0, le=1)  # fraction of the steps; 1: control to the end
    controlnet_image: str | None = None  # base64
    controlnet_preprocess: bool = True
    # -- from OctoAI's SDK (not on the doc page) --------------------------------------------------
    clip_skip: int = Field(0, ge=0, le=11)  # text-encoder layers skipped; our bound
    image_encoding: Literal["jpeg", "png"] = "jpeg"
    inpaint_full_res: bool = False
    inpaint_full_res_padding: int = Field(32, ge=0, le=1024)  # pixels; our default and bound
    log_prompt: bool = False
    # Where the job's end is POSTed (signed; see README "Webhooks"); same as the X-Webhook-URL header.
    webhook_url: str | None = Field(None, min_length=1, max_length=2048)  # not in OctoAI spec


class ImageGeneration(BaseModel):
    image_b64: str | None  # None when removed for safety
    seed: int
    removed_for_safety: bool
    safety_score: float | None


class ImageGenerationResponse(BaseModel):
    images: list[ImageGeneration]
    prediction_time_ms: float


class ValidationError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class HTTPValidationError(BaseModel):
    detail: list[ValidationError]


class ErrorBody(BaseModel):
    """Every other error: FastAPI's ``{"detail": "<reason>"}``."""

    detail: str | list[ValidationError]


# -- asset library (/v1/assets) -------------------------------------------------------------------
ASSET_TYPES = ("file", "checkpoint", "lora", "textual_inversion", "vae", "latent")
#: the asset library's image engines -> our OctoAI engine ids
ASSET_ENGINES = {"image/stable-diffusion-v1-5": "sd", "image/stable-diffusion-xl-v1-0": "sdxl",
                 "image/controlnet-sd15": "controlnet-sd15", "image/controlnet-sdxl": "controlnet-sdxl"}
STATUSES = ("ready_to_upload", "uploading", "uploaded", "ready", "rejected", "error", "deleted")
AssetType = Literal[ASSET_TYPES]  # type: ignore[valid-type]
AssetEngine = Literal[tuple(ASSET_ENGINES)]  # type: ignore[valid-type]
FileFormat = Literal["safetensors", "pt"]
DataType = Literal["fp16", "fp32", "int4", "int8"]


class AssetData(OctoModel):
    asset_type: Literal[ASSET_TYPES] | None = None  # type: ignore[valid-type]  # the SDK repeats it here
    engine: str | None = None  # an image engine (ASSET_ENGINES); checked against asset_type
    file_format: FileFormat = "safetensors"
    data_type: DataType | None = None
    trigger_words: list[TriggerWord] | None = Field(None, max_length=16)  # our bound
    checkpoint: str | None = Field(None, max_length=200)  # LoRA: the checkpoint it was trained on

    @field_validator("file_format")
    @classmethod
    def _safetensors(cls, v: str) -> str:
        if v != "safetensors":
            raise ValueError("only safetensors files are accepted (pickle .pt files are never loaded)")
        return v


class CreateAssetRequest(OctoModel):
    asset_type: Literal[ASSET_TYPES]  # type: ignore[valid-type]
    data: AssetData
    name: Annotated[str, Field(pattern=f"^{ASSET_NAME.pattern}$")]
    description: str | None = Field(None, max_length=2000)  # our bound
    is_public: bool = False
    transfer_api_type: Literal["presigned-url", "sts", "gcp-oauth", "any"] | None = None
    skip_validation: bool = False  # validation always runs: only safe, matching weights are kept
    url: str | None = Field(None, max_length=2000)
    hf_repo: str | None = Field(None, max_length=200)
    hf_token_secret: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> "CreateAssetRequest":
        if self.data.asset_type is not None and self.data.asset_type != self.asset_type:
            raise ValueError(f"data.asset_type {self.data.asset_type!r} differs from asset_type {self.asset_type!r}")
        return self


class CompleteUploadRequest(OctoModel):
    skip_validation: bool = False
    token: str | None = Field(None, max_length=2000)  # unused, as in OctoAI's SDK


class Asset(BaseModel):
    id: str
    name: str
    description: str
    asset_type: str
    data: dict
    size_bytes: int
    status: str
    status_details: str
    created_at: str
    is_public: bool
    tenant_uuid: str


class PresignedUrlTransferApi(BaseModel):
    type: Literal["presigned-url"] = "presigned-url"
    put_url: str
    get_url: str


class CreateAssetResponse(BaseModel):
    asset: Asset
    transfer_api: PresignedUrlTransferApi


class RetrieveAssetResponse(BaseModel):
    asset: Asset
    transfer_api: dict


class ListAssetsResponse(BaseModel):
    data: list[Asset]
    has_more: bool
    total: int


class DeleteAssetResponse(BaseModel):
    id: str
    deleted_at: str


class CompleteAssetUploadResponse(BaseModel):
    error: str | None = None
