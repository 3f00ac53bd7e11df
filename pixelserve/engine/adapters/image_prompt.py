"""Image prompts (OctoAI ``transfer_images``) through an IP-Adapter configured for the model.

The model config names the adapter (``ip_adapter``: one safetensors file in the original layout,
``image_proj.*`` + ``ip_adapter.<n>.to_{k,v}_ip.weight``) and the CLIP image encoder it was trained
with (``image_encoder``: a CLIPVisionModelWithProjection folder, safetensors). Both are read once
per model; the encoder and its image processor only ever join the per-call pipeline.

``load_ip_adapter`` replaces the UNet's cross-attention processors and adds an image projection,
after which the UNet *requires* image embeddings on every call. So it is loaded for the call that
has an image prompt only (on a throwaway view of the base pipeline, so nothing is registered on
the shared one), its scale set with ``set_ip_adapter_scale``, and afterwards the very processor
objects the UNet had before are put back with its projection settings: the next request runs
the UNet exactly as before. A model without an IP-Adapter refuses image prompts in ``check()``
(NotSupported, 501).
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from typing import Any, Iterator

from pixelserve.core.request import GenerationRequest
from pixelserve.engine.adapters.base import lora_view
from pixelserve.errors import NotSupported


def _loaded(model: Any) -> dict[str, Any]:
    """The adapter's tensors, the image encoder and its processor (read once per model)."""
    state = model.state.get("image_prompt")
    if state is not None:
        return state
    spec = model.spec
    if spec.ip_adapter is None or spec.image_encoder is None:
        raise NotSupported(f"model {spec.id} has no IP-Adapter configured (ip_adapter and image_encoder)",
                           field="transfer_images")
    from safetensors.torch import load_file
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    tensors = load_file(str(spec.ip_adapter))
    parts: dict[str, dict] = {"image_proj": {}, "ip_adapter": {}}
    for key, value in tensors.items():
        prefix, _, rest = key.partition(".")
        if prefix in parts:
            parts[prefix][rest] = value
    encoder = CLIPVisionModelWithProjection.from_pretrained(
        spec.image_encoder, local_files_only=True, use_safetensors=True, dtype=model.pipe.unet.dtype)
    if (spec.image_encoder / "preprocessor_config.json").is_file():
        processor = CLIPImageProcessor.from_pretrained(spec.image_encoder, local_files_only=True)
    else:  # the IP-Adapter encoders' input: CLIP's 224 px
        size = encoder.config.image_size
        processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    state = model.state["image_prompt"] = {
        "state_dict": parts, "image_encoder": encoder.to(model.device).eval(), "feature_extractor": processor}
    return state


@contextmanager
def applied(model: Any, base: Any, request: GenerationRequest) -> Iterator[tuple[dict, dict]]:
    """(component overrides, pipeline arguments) for this call's image prompt; both empty without one."""
    ref = request.image_prompt
    if ref is None:
        yield {}, {}
        return
    loaded = _loaded(model)
    view_of = lora_view(base.pipe)  # compiled modules unwrapped; a new pipeline object when they were
    unet = view_of.unet
    processors = dict(unet.attn_processors)
    projection, hid_type = unet.encoder_hid_proj, unet.config.encoder_hid_dim_type
    components = {"image_encoder": loaded["image_encoder"], "feature_extractor": loaded["feature_extractor"]}
    params = set(inspect.signature(type(view_of).__init__).parameters)
    extra = {"requires_safety_checker": False} if "requires_safety_checker" in params else {}
    view = type(view_of)(**{k: v for k, v in {**view_of.components, **components}.items() if k in params}, **extra)
    try:
        state = {k: dict(v) for k, v in loaded["state_dict"].items()}
        view.load_ip_adapter(state, subfolder=None, weight_name=None, image_encoder_folder=None)
        view.set_ip_adapter_scale(float(ref.scale))
        yield components, {"ip_adapter_image": [[im.convert("RGB") for im in ref.images]]}
    finally:  # the UNet as it was: the same processor objects, no image projection
        unet.set_attn_processor(processors)
        unet.encoder_hid_proj = projection
        unet.config.encoder_hid_dim_type = hid_type
