"""The one internal contract between the dialects and the engine.

A dialect translates its wire body into a ``GenerationRequest``; ``core.validate`` checks it
against the chosen model and fills defaults (seeds); the engine sees only validated requests
and answers with a ``GenerationResult``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from pixelserve.core.samplers import NAMES

#: "post" runs only the post-processing on ``init_image`` (EngineClient.postprocess).
Task = Literal["txt2img", "img2img", "inpaint", "variation", "post"]
MAX_SEED = 2**32 - 1

#: Sampler names every dialect translates to (the table, with what each builds: core/samplers.py).
SCHEDULERS = NAMES
#: What a ControlNet's control map can be made with (``ControlNetRef.preprocess``; engine/adapters/controlnet.py).
PREPROCESSORS = ("canny",)


@dataclass(frozen=True)
class FaceRefine:
    """Karlo's face_refiner options (ranges checked by the dialect)."""

    bbox_size_threshold: float = 1.0  # refine faces whose area / image area is below this
    bbox_filter_threshold: float = 1.0  # detector confidence needed to count as a face (0: off)
    restoration_repeats: int = 2
    weight_sft: float = 0.5  # how much of the original face is kept (1: all of it)


@dataclass(frozen=True)
class Hires:
    """A second pass at a larger size (A1111's hires fix): each image resized to width x height, then
    an img2img pass of the same request at ``strength`` (engine/post/hires.py)."""

    width: int
    height: int
    strength: float
    steps: int  # as img2img counts them: int(steps * strength) are run
    resample: str = "lanczos"  # lanczos | nearest (pixels) | latent:bilinear[-aa] | latent:bicubic[-aa] | latent:nearest[-exact]
    scheduler: str | None = None  # None: the request's
    prompt: str | None = None  # None: the request's
    negative_prompt: str | None = None


@dataclass(frozen=True)
class PostProcess:
    """What happens to the generated images before they are returned (engine/post/)."""

    hires: Hires | None = None  # runs first, before face refinement and upscaling
    face_refine: FaceRefine | None = None
    upscale: int | None = None  # 2 or 4
    max_side: int = 2048  # an upscaled side never exceeds this
    nsfw_check: bool = False


@dataclass(frozen=True)
class LoraRef:
    """A LoRA applied to this request only (never leaks into the next one)."""

    name: str  # asset name, for records and errors
    path: str  # local safetensors file, resolved by the service (asset library or config)
    weight: float = 1.0


@dataclass(frozen=True)
class TextualInversionRef:
    name: str
    path: str  # local safetensors file
    token: str  # trigger word that the embedding is bound to in the prompt


@dataclass(frozen=True)
class ControlNetRef:
    name: str
    path: str  # local safetensors file or diffusers folder of a ControlNet for the model's family
    image: Any  # PIL.Image: the control image as sent (preprocessed by the engine when asked)
    preprocess: str | None = "canny"  # None: the image already is the control map
    conditioning_scale: float = 1.0
    end: float = 1.0  # fraction of the steps after which control stops (OctoAI controlnet_early_stop)


@dataclass(frozen=True)
class ImagePromptRef:
    """Reference images guiding the generation through an image-prompt adapter (IP-Adapter)."""

    images: tuple[Any, ...]  # PIL.Images
    scale: float = 0.6
    trigger: str | None = None  # OctoAI transfer_images: the trigger word in the prompt


IMAGE_FIELDS = ("init_image", "mask_image", "reference_image")
#: Fields added for the A1111 dialect, described only when set (older job records and plans stay as they were).
DESCRIBED_WHEN_SET = {"prompt_break": False, "prompt_schedule": (), "subseeds": None, "subseed_strength": 0.0,
                      "tiling": False, "seed_resize_from": None, "eta": None}
NESTED_FIELDS = ("post", "loras", "textual_inversions", "controlnet", "image_prompt", "style")


@dataclass(frozen=True)
class StyleTemplate:
    """A style preset the dialect applied to the prompts (OctoAI ``style_preset``): the prompts carry
    its words, and the token limits count only the caller's own text (engine/text/weighting.py)."""

    name: str
    template: str  # with "{prompt}" where the caller's prompt went
    negative: str | None = None  # put before the caller's negative prompt, joined with ", "

    def callers_prompt(self, styled: str) -> str:
        before, _, after = self.template.partition("{prompt}")
        return styled[len(before):len(styled) - len(after)]

    def callers_negative(self, styled: str) -> str:
        if not self.negative:
            return styled
        return styled[len(self.negative) + 2:] if styled.startswith(self.negative + ", ") else ""


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
    subseeds: tuple[int, ...] | None = None  # A1111 variation seeds, one per image (txt2img; engine/families/variation.py)
    subseed_strength: float = 0.0  # 0: the seeds' own noise; 1: the subseeds'
    seed_resize_from: tuple[int, int] | None = None  # (width, height) the seeds' noise is drawn at (A1111)
    tiling: bool = False  # circular padding: an image that tiles seamlessly (engine/families/tiling.py)
    steps: int = 30
    guidance_scale: float = 7.5
    scheduler: str | None = None  # core.samplers name; None keeps the model's own
    eta: float | None = None  # DDIM's eta (0 deterministic .. 1 DDPM-like); None: the pipeline's 0
    strength: float | None = None  # img2img / inpaint
    init_image: Any = None  # PIL.Image, decoded and size-checked by core.images
    mask_image: Any = None  # PIL.Image, white = repaint (diffusers convention)
    use_refiner: bool | None = None  # None: use one when the model has it
    prior_steps: int | None = None  # unCLIP prior (Karlo); None: the family default
    prior_guidance_scale: float | None = None
    reference_image: Any = None  # PIL.Image guiding an inpainting (Karlo reference_image)
    post: PostProcess = field(default_factory=PostProcess)
    # -- text encoding (engine/text/prompts.py) ------------------------------------------------------
    prompt_2: str | None = None  # SDXL second text encoder; None: same as prompt
    negative_prompt_2: str | None = None
    prompt_weighting: bool = False  # "(word:1.5)" syntax and long prompts in 77-token chunks
    prompt_break: bool = False  # with prompt_weighting: A1111's "BREAK" ends the 77-token chunk (SD only)
    #: A1111 prompt editing: ((last step, prompt text), ...) in step order, steps counted as they run
    #: (img2img: int(steps * strength)); ``prompt`` is the first's text (engine/families/schedule.py).
    prompt_schedule: tuple[tuple[int, str], ...] = ()
    clip_skip: int | None = None
    # -- SDXL refiner handover ------------------------------------------------------------------
    high_noise_frac: float | None = None  # None: the family default (0.8)
    # -- inpainting options ---------------------------------------------------------------------
    inpaint_full_res: bool = False  # repaint only the masked area's crop, at full resolution
    inpaint_full_res_padding: int = 0
    outpaint: bool = False  # the mask's border is new canvas to fill
    # -- adapters and asset overrides, resolved to local files by the service -----------------
    checkpoint: str | None = None  # a checkpoint file replacing the model's own weights
    vae: str | None = None  # a VAE file replacing the model's own
    loras: tuple[LoraRef, ...] = ()
    textual_inversions: tuple[TextualInversionRef, ...] = ()
    controlnet: ControlNetRef | None = None
    image_prompt: ImagePromptRef | None = None
    style: StyleTemplate | None = None  # the preset whose words the prompts carry

    def with_(self, **changes: Any) -> "GenerationRequest":
        return replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        """The request as JSON (no image bytes): job records, Studio job plans and logs.
        ``from_description`` rebuilds it, given the images."""
        out = {k: v for k, v in self.__dict__.items() if k not in IMAGE_FIELDS and k not in NESTED_FIELDS
               and not (k in DESCRIBED_WHEN_SET and v == DESCRIBED_WHEN_SET[k])}
        out["post"] = asdict(self.post)
        if self.post.hires is None:
            del out["post"]["hires"]
        out["loras"] = [asdict(x) for x in self.loras]
        out["textual_inversions"] = [asdict(x) for x in self.textual_inversions]
        if self.controlnet is not None:
            c = self.controlnet
            out["controlnet"] = {"name": c.name, "preprocess": c.preprocess,
                                 "conditioning_scale": c.conditioning_scale, "end": c.end}
        out["has_image_prompt"] = self.image_prompt is not None
        if self.image_prompt is not None:
            out["image_prompt_scale"] = self.image_prompt.scale
        if self.style is not None:
            out["style"] = asdict(self.style)
        out["seeds"] = list(self.seeds) if self.seeds is not None else None
        if self.subseeds is not None:
            out["subseeds"] = list(self.subseeds)
        out["has_init_image"] = self.init_image is not None
        out["has_mask_image"] = self.mask_image is not None
        out["has_reference_image"] = self.reference_image is not None
        return out

    @classmethod
    def from_description(cls, d: dict[str, Any], *, init_image: Any = None, mask_image: Any = None,
                         reference_image: Any = None, image_prompt: tuple = ()) -> "GenerationRequest":
        """``describe()``'s inverse; the images come from wherever the caller kept them (``image_prompt``:
        the reference images of an image prompt, at the described scale). A ControlNet is not rebuilt:
        its description has no file path."""
        if d.get("controlnet") is not None:
            raise ValueError("a described ControlNet request cannot be rebuilt (no control image or path)")
        names = {f.name for f in fields(cls)} - set(IMAGE_FIELDS) - set(NESTED_FIELDS)
        values = {k: v for k, v in d.items() if k in names}
        post = dict(d.get("post") or {"nsfw_check": d.get("nsfw_check", False)})  # older Studio plans: the flag alone
        if post.get("face_refine") is not None:
            post["face_refine"] = FaceRefine(**post["face_refine"])
        if post.get("hires") is not None:
            post["hires"] = Hires(**post["hires"])
        for name in ("seeds", "subseeds"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        if values.get("seed_resize_from"):
            values["seed_resize_from"] = tuple(values["seed_resize_from"])
        if values.get("prompt_schedule"):
            values["prompt_schedule"] = tuple((int(end), text) for end, text in values["prompt_schedule"])
        prompt_ref = None
        if image_prompt:
            prompt_ref = ImagePromptRef(images=tuple(image_prompt), scale=d.get("image_prompt_scale", 0.6))
        return cls(**values, post=PostProcess(**post), init_image=init_image, mask_image=mask_image,
                   reference_image=reference_image, image_prompt=prompt_ref,
                   style=StyleTemplate(**d["style"]) if d.get("style") else None,
                   loras=tuple(LoraRef(**x) for x in d.get("loras", ())),
                   textual_inversions=tuple(TextualInversionRef(**x) for x in d.get("textual_inversions", ())))


@dataclass
class GenerationResult:
    images: list[Any]  # PIL.Image, one per seed
    seeds: list[int]
    model: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: One NSFW score in [0, 1] per image when post.nsfw_check was asked for, else None.
    nsfw_scores: list[float] | None = None
    #: Which worker ran it, when the engine has several (a Ray Serve replica's id); for logs.
    worker: str | None = None
