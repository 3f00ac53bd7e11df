"""A1111 txt2img / img2img wire models: the vendor's field names, order and defaults.

Source: shared/specs/a1111-sdapi.md B.3-B.5 (``modules/api/models.py`` builds these from the
``StableDiffusionProcessing*`` dataclasses: every field optional with the dataclass default). As in
A1111, any field accepts ``null`` (read here as "not sent": its default applies), values are coerced
the way pydantic does (``"20"`` is 20) and unknown keys are ignored. Ranges and what is not built
are checked in translate.py, which names the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class A1111Model(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        # A1111 accepts null for every field; here it means the field's default (and "not set" for infotext)
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    def sent(self, name: str) -> bool:
        return name in self.model_fields_set


class Processing(A1111Model):
    """``StableDiffusionProcessing``'s fields, in its order, plus what ``models.py`` adds."""

    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] | None = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    sampler_name: str | None = None
    scheduler: str | None = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    eta: float | None = None
    denoising_strength: float | None = 0.75
    s_min_uncond: float | None = None
    s_churn: float | None = None
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool = True
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = None
    disable_extra_networks: bool = False
    firstpass_image: str | None = None
    comments: dict[str, Any] | None = None
    # added by modules/api/models.py
    sampler_index: str = "Euler"
    script_name: str | None = None
    script_args: list = []
    send_images: bool = True
    save_images: bool = False
    alwayson_scripts: dict[str, Any] = {}
    force_task_id: str | None = None
    infotext: str | None = None


class Txt2ImgRequest(Processing):
    """POST /sdapi/v1/txt2img (``StableDiffusionTxt2ImgProcessingAPI``)."""

    enable_hr: bool = False
    firstphase_width: int = 0
    firstphase_height: int = 0
    hr_scale: float = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""


class Img2ImgRequest(Processing):
    """POST /sdapi/v1/img2img (``StableDiffusionImg2ImgProcessingAPI``)."""

    init_images: list[str] | None = None
    resize_mode: int = 0
    image_cfg_scale: float | None = None
    mask: str | None = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: int | None = None
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float | None = None
    latent_mask: str | None = None
    include_init_images: bool = False


class GenerationResponse(BaseModel):
    """``TextToImageResponse`` / ``ImageToImageResponse``."""

    images: list[str] | None = None  # raw base64, no data: prefix
    parameters: dict[str, Any]
    info: str  # a JSON string
