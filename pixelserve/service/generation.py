"""What the dialects call to generate: the service pipeline (service/pipeline.py) and its types."""

from pixelserve.service.pipeline import (OutputOptions, Pipeline, ServedImage, ServiceResult,  # noqa: F401
                                         cancel_on_disconnect)

GenerationService = Pipeline
