"""Schemathesis against the live OpenAPI schema of every dialect: generated requests (valid and
invalid) never get a 5xx. The engine is a fast fake, so each case costs milliseconds.

CI runs a bounded number of cases per operation; ``make fuzz`` runs many more (PIXELSERVE_FUZZ_EXAMPLES).
"""

import collections
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from PIL import Image

from pixelserve.app import create_app
from pixelserve.core.models import demo_config
from pixelserve.core.request import GenerationResult
from pixelserve.db.crud.keys import create_key
from pixelserve.engine.client import EngineHealth, ModelInfo
from tests.conftest import make_settings
from tests.security.live import live_server

EXAMPLES = int(os.environ.get("PIXELSERVE_FUZZ_EXAMPLES", "40"))


class InstantEngine:
    """Answers every job at once with grey images: fuzzing tests the API, not the pipelines."""

    async def start(self):
        pass

    async def stop(self):
        pass

    def check(self, request):
        pass

    async def submit(self, job_id, request, on_progress=None):
        images = [Image.new("RGB", (request.width, request.height), (128, 128, 128)) for _ in request.seeds]
        return GenerationResult(images=images, seeds=list(request.seeds), model=request.model,
                                nsfw_scores=[0.0] * len(images) if request.post.nsfw_check else None)

    async def postprocess(self, job_id, request, image):
        return GenerationResult(images=[image], seeds=list(request.seeds or (0,)), model=request.model)

    def cancel(self, job_id):
        return False

    def health(self):
        return EngineHealth(ready=True, devices=("fake",), queue_depth=0, queue_capacity=8, running=0)

    def models(self):
        return [ModelInfo(m.id, m.family, m.tasks, m.refiner is not None, True, True)
                for m in demo_config().models.values()]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, tiny_cache):
    app = create_app(make_settings(tmp_path_factory.mktemp("fuzz"), tiny_cache, max_image_pixels=1024 * 1024),
                     engine=InstantEngine())
    with live_server(app) as port:
        with app.state.sessions() as session:
            _, key = create_key(session, "fuzz")
        yield {"base": f"http://127.0.0.1:{port}", "key": key}


def test_no_generated_request_gets_a_server_error(fuzz_server):
    schema = schemathesis.openapi.from_url(fuzz_server["base"] + "/openapi.json")
    key = fuzz_server["key"]
    calls = collections.Counter()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            response = case.call(base_url=fuzz_server["base"], timeout=30,
                                 headers={"Authorization": f"KakaoAK {key}", "X-Api-Key": key})
            calls[operation.label] += 1
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}")

        fuzz()
    assert len(calls) >= 10  # every dialect's operations were reached
    print(f"fuzz: {sum(calls.values())} cases over {len(calls)} operations, 0 responses >= 500")
