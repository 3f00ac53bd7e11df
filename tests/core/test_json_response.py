"""core/json_response.JSONResponse writes what Starlette's JSONResponse writes, by pydantic-core."""

import base64
import json
import os

from starlette.responses import JSONResponse as StarletteJSONResponse

from pixelserve.core.json_response import JSONResponse


def test_an_image_answer_renders_byte_for_byte_as_starlettes():
    answer = {"id": "3f1c", "model_version": "v2.0", "images": [
        {"id": "a1", "image": base64.b64encode(os.urandom(30_000)).decode(), "seed": 7, "nsfw_content_detected": None,
         "nsfw_score": 0.125}], "prompt": "고양이 \"quoted\" \\ é \n tab\t", "sizes": [1, 2.5, True, False],
        "nested": {"empty": [], "none": None, "big": 12345678901234567890, "small": -0.0}}
    ours = JSONResponse(answer)
    assert ours.body == StarletteJSONResponse(answer).body
    assert ours.headers["content-type"] == "application/json"
    assert json.loads(ours.body) == answer


def test_floats_keep_their_value_and_nan_becomes_null():
    values = [0.1, 1e-7, 2.5e-05, 1e16, 1 / 3, 5e-324]
    assert json.loads(JSONResponse(values).body) == values
    assert json.loads(JSONResponse({"score": float("nan"), "top": float("inf")}).body) == {"score": None, "top": None}
