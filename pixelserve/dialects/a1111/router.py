"""Mounts the A1111 dialect: the generation routes (generation.py: txt2img, img2img) and the rest
clients call (endpoints.py: progress, options, models, samplers ...)."""

from __future__ import annotations

from fastapi import FastAPI

from pixelserve.core.model_config import ModelsConfig
from pixelserve.dialects.a1111 import endpoints, generation
from pixelserve.dialects.a1111.checkpoints import CheckpointTable
from pixelserve.dialects.a1111.options import A1111Defaults

#: How a client points at this dialect ({base}: the server's URL, {key}: an API key), shown at start.
CLIENT_HINT = ("A1111   POST {base}/sdapi/v1/txt2img              HTTP Basic, password {key}      "
               "(webuiapi.WebUIApi(baseurl=URL/sdapi/v1, username='any', password=KEY))")


def mount(app: FastAPI, models: ModelsConfig) -> None:
    app.state.client_hints.append(CLIENT_HINT)
    app.state.a1111_checkpoints = CheckpointTable.of(models)  # checkpoints.Checkpoints reads it
    # Each key's options and default checkpoint; generation reads model_for(caller) / options_for(caller).
    app.state.a1111_defaults = A1111Defaults(app.state, app.state.a1111_checkpoints)
    app.include_router(generation.router)
    app.include_router(endpoints.router)
