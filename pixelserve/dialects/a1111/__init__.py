"""AUTOMATIC1111's stable-diffusion-webui API (``/sdapi/v1/*``).

Sources: shared/specs/a1111-sdapi.md. Unlike A1111, jobs run concurrently (no global queue lock),
the checkpoint in ``/options`` is each API key's own default (one client's switch never changes
another's jobs), and ``/progress`` reports the caller's own job.
"""
