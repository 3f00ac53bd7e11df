"""The one internal contract between the dialects and the engine.

A dialect translates its wire body into a ``GenerationRequest``; ``core.validate`` checks it
against the chosen model and fills defaults (seeds); the engine sees only validated requests
and answers with a ``GenerationResult``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

Task = Literal["txt2img", "img2img", "inpaint", "variation"]
MAX_SEED = 2**32 - 1

#: Sampler names every dialect translates to; engine/schedulers.py maps each to a diffusers class.
SCHEDULERS = (
    "ddim", "ddpm", "pndm", "lms", "lms_karras", "euler", "euler_a", "heun",
    "dpm++_2m", "dpm++_2m_karras", "dpm++_2m_sde", "dpm++_2m_sde_karras", "dpm_single",
    "dpm2", "dpm2_karras", "dpm2_a", "dpm2_a_karras", "dpm++_sde_karras", "unipc", "lcm",
)


@dataclass(frozen=True)
class FaceRefine:
    """Karlo's face_refiner options (ranges checked by the dialect)."""

    bbox_size_threshold: float = 1.0  # refine faces whose area / image area is below this
    bbox_filter_threshold: float = 1.0  # detector confidence needed to count as a face (0: off)
    restoration_repeats: int = 2
    weight_sft: float = 0.5  # how much of the original face is kept (1: all of it)


@dataclass(frozen=True)
class PostProcess:
    """What happens to the generated images before they are returned (engine/post/)."""

    face_refine: FaceRefine | None = None
    upscale: int | None = None  # 2 or 4
    max_side: int = 2048  # an upscaled side never exceeds this
    nsfw_check: bool = False


@dataclass(frozen=True)
class GenerationRequest:
    model: str
    prompt: str
    task: Task = "txt2img"
    negative_prompt: str | None = None
    width: int = 512
    height: int = 512
    num_images: int = 1
    seeds: tuple[int, ...] | None = None  # one per image; None: random, filled by validate
    steps: int = 30
    guidance_scale: float = 7.5
    scheduler: str | None = None  # engine.schedulers name; None keeps the model's own
    strength: float | None = None  # img2img / inpaint
    init_image: Any = None  # PIL.Image, decoded and size-checked by core.images
    mask_image: Any = None  # PIL.Image, white = repaint (diffusers convention)
    use_refiner: bool | None = None  # None: use one when the model has it
    prior_steps: int | None = None  # unCLIP prior (Karlo); None: the family default
    prior_guidance_scale: float | None = None
    reference_image: Any = None  # PIL.Image guiding an inpainting (Karlo reference_image)
    post: PostProcess = field(default_factory=PostProcess)

    def with_(self, **changes: Any) -> "GenerationRequest":
        return replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        """JSON-safe summary for job records and logs (no image bytes)."""
        images = ("init_image", "mask_image", "reference_image")
        out = {k: v for k, v in self.__dict__.items() if k not in images and k != "post"}
        out["post"] = asdict(self.post)
        out["seeds"] = list(self.seeds) if self.seeds is not None else None
        out["has_init_image"] = self.init_image is not None
        out["has_mask_image"] = self.mask_image is not None
        out["has_reference_image"] = self.reference_image is not None
        return out


@dataclass
class GenerationResult:
    images: list[Any]  # PIL.Image, one per seed
    seeds: list[int]
    model: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: One NSFW score in [0, 1] per image when post.nsfw_check was asked for, else None.
    nsfw_scores: list[float] | None = None
