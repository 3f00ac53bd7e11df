"""OpenAI Images API wire models: the vendor's field names, order, ranges and defaults.

Source: shared/specs/openai-images.md (the ``openai`` SDK's ``image_generate_params.py``,
``image_edit_params.py``, ``image_create_variation_params.py`` and ``images_response.py``, with the
spec's defaults). Fields that SDK 3.51 sends beyond the spec's snapshot are marked ``# SDK 3.51``;
anything we add is marked ``# not in OpenAI spec``. Every optional field accepts JSON ``null`` (the
SDK sends an explicit ``None`` as ``null``); multipart text fields arrive as strings (``"true"``,
``"2"``) and are read leniently, JSON ones strictly.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

#: OpenAI's image model names (the SDK's ``ImageModel`` in the spec's snapshot); each is mapped to a
#: configured model by the ``[openai.models]`` table (config.py).
OPENAI_MODELS = ("dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2",
                 "gpt-image-2-2026-04-21", "chatgpt-image-latest")
#: Sizes the SDK lists; any other ``WxH`` is allowed too (SDK 2.34+), checked against the model.
LISTED_SIZES = ("256x256", "512x512", "1024x1024", "1536x1024", "1024x1536", "1792x1024", "1024x1792")
#: Per model name: the longest prompt (characters). GPT image names and pixelserve ids: 32000.
PROMPT_LIMITS = {"dall-e-2": 1000, "dall-e-3": 4000}
MAX_PROMPT = 32000

#: ``auto``, or ``WxH`` with digits; ranges are the model's (translate.plan_size).
Size = Annotated[str, Field(pattern=r"^(auto|[0-9]{1,5}x[0-9]{1,5})$", examples=["1024x1024", "auto"])]
N = Annotated[int, Field(ge=1, le=10)]
Quality = Literal["standard", "hd", "low", "medium", "high", "auto",
                  "xhigh", "max"]  # xhigh, max: SDK 3.51
ResponseFormat = Literal["url", "b64_json"]
OutputFormat = Literal["png", "jpeg", "webp", "gif", "svg"]  # gif, svg: SDK 3.51 (refused: translate)
Compression = Annotated[int, Field(ge=0, le=100)]
Background = Literal["transparent", "opaque", "auto"]
Moderation = Literal["low", "auto"]
PartialImages = Annotated[int, Field(ge=0, le=3)]
Prompt = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT)]
Complexity = Literal["low", "medium", "high"]  # SDK 3.51 (refused: translate)
FrameCount = Annotated[int, Field(ge=1)]  # SDK 3.51: animated output (refused: translate)


class SvgOptions(BaseModel):  # SDK 3.51 (refused: translate)
    model: str
    reasoning: dict | None = None


class JsonModel(BaseModel):
    # strict: "2" is not 2, "true" is not true in a JSON body; unknown fields are ignored (clients such
    # as Open WebUI merge admin-set extra parameters into the body).
    model_config = ConfigDict(strict=True, extra="ignore")


class FormModel(BaseModel):
    # multipart: every value is a string ("2", "true"), converted as the SDK wrote it.
    model_config = ConfigDict(extra="ignore")


class GenerateRequest(JsonModel):
    """Create image: POST /v1/images/generations (JSON)."""

    prompt: Prompt
    model: str | None = None  # spec default dall-e-2
    n: N | None = None  # default 1; dall-e-3: 1 only
    size: Size | None = None  # default auto
    quality: Quality | None = None  # default auto
    style: Literal["vivid", "natural"] | None = None
    response_format: ResponseFormat | None = None  # default url; GPT image names: b64_json
    output_format: OutputFormat | None = None  # default png
    output_compression: Compression | None = None  # default 100
    background: Background | None = None  # default auto
    moderation: Moderation | None = None  # default auto
    stream: bool | None = None  # default false
    partial_images: PartialImages | None = None  # default 0
    user: str | None = None
    safety_identifier: str | None = None  # SDK 3.51: recorded like user
    complexity: Complexity | None = None  # SDK 3.51
    frame_count: FrameCount | None = None  # SDK 3.51
    frame_duration_ms: Annotated[int, Field(ge=1)] | None = None  # SDK 3.51
    svg: SvgOptions | None = None  # SDK 3.51


class EditForm(FormModel):
    """Create image edit: POST /v1/images/edits (multipart; the files ``image`` / ``image[]``, ``mask``
    are the route's own parameters)."""

    prompt: Prompt
    background: Background | None = None
    input_fidelity: Literal["high", "low"] | None = None  # default low
    model: str | None = None  # current spec default gpt-image-1.5
    n: N | None = None
    output_compression: Compression | None = None
    output_format: OutputFormat | None = None
    partial_images: PartialImages | None = None
    quality: Quality | None = None
    response_format: ResponseFormat | None = None
    size: Size | None = None  # default: the image's own size
    stream: bool | None = None
    user: str | None = None
    safety_identifier: str | None = None  # SDK 3.51
    complexity: Complexity | None = None  # SDK 3.51
    frame_count: FrameCount | None = None  # SDK 3.51
    frame_duration_ms: Annotated[int, Field(ge=1)] | None = None  # SDK 3.51


class VariationForm(FormModel):
    """Create image variation: POST /v1/images/variations (multipart; the file ``image`` is the route's)."""

    model: str | None = None  # spec default dall-e-2
    n: N | None = None
    response_format: ResponseFormat | None = None  # default url
    size: Size | None = None  # default 1024x1024
    user: str | None = None


# -- answers -------------------------------------------------------------------------------------
class Image(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class TokenDetails(BaseModel):
    image_tokens: int
    text_tokens: int


class Usage(BaseModel):
    input_tokens: int
    input_tokens_details: TokenDetails
    output_tokens: int
    output_tokens_details: TokenDetails | None = None
    total_tokens: int


class ImagesResponse(BaseModel):
    created: int
    data: list[Image]
    background: Literal["transparent", "opaque"] | None = None
    output_format: Literal["png", "webp", "jpeg"] | None = None
    quality: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    size: str | None = None
    usage: Usage | None = None


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class Error(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    error: Error
