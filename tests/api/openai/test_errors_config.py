"""OpenAI's error bodies and retry headers per domain error, moderation, and the [openai] table."""

import json

import pytest

from pixelserve.core.model_config import ConfigError, ModelsConfig, ModelSpec
from pixelserve.dialects.openai import config, translate
from pixelserve.dialects.openai.route import OpenAIRoute
from pixelserve.errors import (EngineFailure, InvalidRequest, NotFound, NotSupported, Overloaded, QuotaExceeded,
                               Unauthorized, status_of)
from pixelserve.service.pipeline import ServedImage, ServiceResult


@pytest.mark.parametrize("exc,status,kind,code,retry", [
    (InvalidRequest("too big", field="size"), 400, "invalid_request_error", None, "false"),
    (NotSupported("no", field="model"), 400, "invalid_request_error", "unsupported_value", "false"),
    (NotFound("nope", field="model"), 404, "not_found_error", "model_not_found", "false"),
    (Unauthorized("bad key"), 401, "authentication_error", "invalid_api_key", "false"),
    (QuotaExceeded("slow down", retry_after=30), 429, "rate_limit_error", "rate_limit_exceeded", None),
    (Overloaded("queue full"), 503, "server_error", None, None),  # may succeed later: the SDK retries
    (EngineFailure("worker died"), 500, "server_error", None, "false"),  # a retry would run the job again
    (translate.ModerationBlocked("flagged"), 400, "invalid_request_error", "moderation_blocked", "false"),
])
def test_error_shape_and_retry_header(exc, status, kind, code, retry):
    r = OpenAIRoute.render(exc, status_of(exc))
    body = json.loads(r.body)["error"]
    assert r.status_code == status and body["type"] == kind and body["code"] == code
    assert set(body) == {"message", "type", "param", "code"} and body["param"] == exc.field
    assert r.headers.get("x-should-retry") == retry


def test_a_flagged_image_refuses_the_request():
    def result(score):
        return ServiceResult("j", "m", [ServedImage("i", 1, b"", "image/png", "k", score)], {})

    translate.check_moderation(result(0.2), 0.5)
    translate.check_moderation(result(None), 0.5)  # moderation low: no score
    with pytest.raises(translate.ModerationBlocked):
        translate.check_moderation(result(0.5), 0.5)


def models(**tables) -> ModelsConfig:
    specs = {"sd15": ModelSpec("sd15", "sd", None), "xl": ModelSpec("xl", "sdxl", None),
             "karlo": ModelSpec("karlo", "unclip", None)}
    return ModelsConfig(models=specs, dialect_tables=tables)


def test_models_table():
    c = config.load(models(openai={"models": {"dall-e-2": "sd15", "house": "sd15"}}))
    assert c.model_for("dall-e-2") == "sd15" and c.model_for("house") == "sd15"
    assert c.model_for("gpt-image-1") == "xl" and c.model_for("karlo") == "karlo"  # default; a model id
    assert c.variation_model_for("dall-e-2") == "karlo" and c.variation_model_for("sd15") == "sd15"
    with pytest.raises(NotFound) as e:
        c.model_for("imagen")
    assert e.value.field == "model"
    for bad in ({"models": {"dall-e-2": "nope"}}, {"variations": "nope"}, {"engines": {}}):
        with pytest.raises(ConfigError):
            config.load(models(openai=bad))


def test_output_size_resizes_before_encoding():
    """A size drawn at the family's native size comes back at the size asked for (OutputOptions.size)."""
    import io

    from PIL import Image

    from pixelserve.core.request import GenerationRequest, GenerationResult
    from pixelserve.service.pipeline import DirectPolicy, Job, OutputOptions

    class Store:
        def put(self, key, data, content_type):
            self.data = data

    policy = DirectPolicy(OutputOptions(format="png", size=(256, 192)))
    job = Job("j", GenerationRequest(model="xl", prompt="p", width=1152, height=896), "openai", None, policy)
    result = GenerationResult(images=[Image.new("RGB", (1152, 896), (9, 9, 9))], seeds=[1], model="xl")
    served = policy.store(Store(), job, result)
    assert Image.open(io.BytesIO(served[0].data)).size == (256, 192)
