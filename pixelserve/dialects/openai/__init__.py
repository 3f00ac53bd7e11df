"""OpenAI Images API (``/v1/images/generations``, ``/edits``, ``/variations``, ``/v1/models``).

Sources: shared/specs/openai-images.md (the ``openai`` SDK's request and response types). What they
leave open was decided as follows (tests in tests/api/openai/ pin each decision; README.md has the
table):

- ``model``: an OpenAI name (protocol.OPENAI_MODELS, or any name of ``[openai.models]``) or a model
  id; unknown: 404 ``model_not_found``. Absent: ``dall-e-2`` (generations, variations) and
  ``gpt-image-1.5`` (edits), as the spec's defaults.
- ``size``: auto (the family's native size), or any ``WxH`` of multiples of 8 from 64 within the
  server's pixel limit; a size the family draws badly is drawn at the nearest native size and
  resized (sizes.py). ``quality`` -> steps and ``style`` -> guidance and words: sizes.py.
- ``response_format`` absent: ``b64_json`` for GPT image names, else ``url`` (signed, 60 minutes).
- ``moderation`` auto (the default) runs the NSFW check; a flagged image makes the whole request a
  400 ``moderation_blocked`` (as OpenAI refuses it): no image is handed out, the job is recorded.
- ``user`` (and SDK 3.51's ``safety_identifier``) go into the job record.
- ``stream`` true (generations and edits): Server-Sent Events, the live previews as partial images
  (JPEG, at most ``partial_images``), then the images (streaming.py).
- Refused with a 400 naming the field: ``background`` transparent,
  ``output_format`` gif/svg and SDK 3.51's ``svg``, ``frame_count``, ``frame_duration_ms``,
  ``complexity``; several edit images without an IP-Adapter.
"""
