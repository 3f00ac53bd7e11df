"""OctoAI Image Gen REST API (``POST /generate/{engine_id}``) and its asset library (``/v1/assets``).

Sources: shared/specs/octoai-image-gen.txt and the SDK facts in shared/specs/README.md. What they
leave open was decided as follows (tests in tests/api/octoai/ pin each decision):

- Engines ``sdxl``, ``sd``, ``controlnet-sdxl``, ``controlnet-sd15`` map to configured models
  (``[octoai.engines]`` in the models TOML, parsed by config.py); any other id is 404.
- Sizes: the doc's nine resolutions per family (SDXL's and SD 1.5's lists); ``settings.octoai_extra_sizes``
  may allow more. The SDK lists more SD 1.5 sizes; the doc's list is the one enforced.
- Samplers: ``protocol.SAMPLERS`` maps each of the SDK's 21 names to a diffusers scheduler config
  (``core/samplers.py``): KLMS = LMS with Karras sigmas, HEUN and K_HEUN = Heun, K_EULER(_ANCESTRAL)
  = Euler (ancestral), DPM_SOLVER_MULTISTEP = DPM++ 2M, DPM_SINGLE = DPM singlestep, UNI_PC = UniPC ...
- ``seed`` as one int gives image i the seed ``seed + i``; a list needs one entry per image; null
  (or no seed) draws a random one; the response reports each image's seed.
- ``strength`` (default 0.8) is the img2img strength; inpainting repaints the mask fully (1.0)
  unless ``strength`` is sent. ``mask_image``: white = paint (as the SDK says). ``outpainting``
  needs ``init_image`` and ``mask_image``, or an ``init_image`` whose transparent pixels are the
  canvas to fill. Inputs are resized to the requested size.
- ``prompt_2``, ``negative_prompt_2``, ``use_refiner`` and ``high_noise_frac`` on an SD 1.5 engine
  are 422 (they apply to SDXL only). ``style_preset`` works on every engine (our templates).
- ``high_noise_frac`` must lie strictly between 0 and 1 (the SDK says 0 to 1; either end leaves the
  base model or the refiner no step to run).
- ``clip_skip`` counts skipped text-encoder layers (diffusers' meaning; 0: none).
- ``controlnet`` may also be used with the sdxl/sd engines; the controlnet engines require it and
  ``controlnet_image``. ``controlnet_preprocess`` makes the public ControlNet's map (canny); a
  private ControlNet gets ``controlnet_image`` as sent (the doc: "provide your own mask").
- ``transfer_images``: one trigger word with 1-4 images, an IP-Adapter reference (501 when the
  family has none configured).
- ``image_encoding`` defaults to jpeg (quality 90). Every image passes the NSFW check; one at or
  over ``PIXELSERVE_NSFW_THRESHOLD`` has ``image_b64`` null and ``removed_for_safety`` true.
- ``log_prompt`` false (the default) keeps the prompts out of the job record.
- Assets: a ``checkpoint`` for a ControlNet engine is a ControlNet; ``file``/``latent`` assets,
  URL/Hugging Face sources and the sts/gcp-oauth transfer APIs are 501. Public assets are listed
  with ``tenant_uuid`` ``octoai``; a private one's ``tenant_uuid`` is its API key's scope (``key:<id>``).
"""
