"""Per-request adapters and overrides on a loaded model, none of which leaks into the next request.

The service resolves every asset to a local safetensors path before the engine sees the request;
here those files are loaded (safetensors only, nothing downloaded) and applied for one call:

- ``checkpoint``: another checkpoint of the model's family, loaded through the weights loader
  (diffusers folder or one file; a single file takes the architecture of the model it replaces)
  and kept in a bounded cache. It becomes this call's *base*: its own LoRA state and caches.
- ``vae``: one AutoencoderKL file (original or diffusers layout), its config taken from the
  model's own VAE; swapped into this call's pipeline only (families/base.py builds a fresh
  pipeline object per call, so nothing shared is modified).
- LoRAs: loaded with diffusers' PEFT integration (``load_lora_weights(state_dict, adapter_name)``)
  and kept loaded per base (bounded, least recently used deleted). Each call activates exactly
  its own set with ``set_adapters(names, weights)``; a call without LoRAs runs ``disable_lora()``,
  whose layers compute ``base_layer(x)`` only, so it gets the base model's output exactly.
  Adapters stay unfused: fusing changes the base weights and unfusing restores them only up to
  float error. With ``PIXELSERVE_COMPILE`` the UNet's LoRAs go into fixed slots instead, hotswapped
  in place with diffusers' ``enable_lora_hotswap`` machinery, so that switching LoRAs or weights
  recompiles nothing (``lora_slots.py``); the text encoders, not compiled, keep named adapters.
- Textual inversions: ``load_textual_inversion`` adds tokens to a tokenizer and rows to a text
  encoder's embedding table. It is run on a *copy* of the tokenizer, and the enlarged embedding
  table is swapped in only while this request's prompts are encoded, then the original table (the
  very same module) is put back: the next request sees the tokenizer and text encoder untouched.
  The copies are cached per set of embeddings (bounded).
"""
