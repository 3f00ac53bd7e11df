"""The Studio platform API: ``POST /api/images/create`` with its records, credits and library.

Source: shared/specs/studio-images-create.txt. The spec is one endpoint's reference page; what it
leaves open was decided as follows (tests in tests/api/studio/ pin each decision):

- Owner: ``ownerId`` is the API key's id; credits, images, styles and collections belong to it.
  Auth disabled: everything belongs to owner 0.
- ``image`` is ``"<ownerId>/<file>"`` in the caller's upload area of the image store
  (``POST /api/images/upload`` answers such paths). Another owner's path is 404, never 403;
  no reference image is public (the spec has no notion of sharing one).
- The spec marks ``image`` required, but its own rule "(reference image + prompt) OR (style +
  prompt) OR (collection + prompt)" makes it one of three sources: exactly one of ``image``,
  ``styleId``, ``collectionId`` (ours) is required; none or several is 400. A reference image
  is an image prompt (IP-Adapter, scale ``studio_reference_scale``) when the Studio model has one
  configured (``ip_adapter`` in the models TOML), else the start of an img2img at
  ``studio_reference_strength``. A collection uses its style and its FIRST reference image.
- A style may name a LoRA (``{"name", "weight"}``, weight 0 to 2): an asset of the asset library
  (``/v1/assets``, ``pixelserve assets add``), the caller's own of that name first, else the public
  one. Unknown or not ready is 404 naming ``styleId`` (or ``collectionId``), not a LoRA for the
  model's family is 400, both before anything is reserved; it is never drawn without the LoRA.
- ``sample`` images cost ``sample x cost`` credits, reserved up front; prices per family (or
  "family:ratio") and per upscale factor come from settings. Spending order: daily, monthly,
  default (the purchased credits last). Refunds go back default first.
- ``GenerationInfo``: ``originalPrompt`` = ``initialPrompt`` or ``prompt``; ``main`` = the text drawn
  (``enhancedPrompt`` when given in English, else ``prompt``); ``super`` = ``main`` inside the style's
  template (what the text encoder gets). ``variationId`` = the image's index within its request.
  ``blurReason`` is set when the NSFW check blurred the image.
- ``etc`` is a JSON string of what has no field: platform (X-Platform), type (X-Type), ratio, seed,
  and for upscales the factor and parent image id. ``Bought`` is always ``[]`` (nothing is sold here).
- ``Upscaled[]`` entries are the image's upscale records, each with ``scaleSize`` = ``[its factor]``;
  ``DownloadLog`` is ``[]`` and ``CollectionInfo.enabled`` false (no download log is kept).
- ``mimeType`` is ``image/webp`` as in the spec's example. Timestamps are UTC ``...Z``.
- Errors are NestJS-shaped ``{"statusCode", "message", "error"}``; bad fields and headers are 400
  (not 422); a 402 adds the three balances.
- ``async: true`` answers the records as accepted (PENDING, no base64) with the balances after the
  reservation; ``GET /api/images/{imageId}`` follows them.
"""
