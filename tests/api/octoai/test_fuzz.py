"""Schemathesis over the OctoAI operations with a valid Bearer token (the shared fuzz test reaches
them only unauthenticated): generated bodies, valid and invalid, never get a 5xx."""

import collections
import os

import schemathesis
from hypothesis import HealthCheck, given, settings

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from tests.conftest import make_settings
from tests.security.live import live_server
from tests.security.test_fuzz import InstantEngine

#: Fewer than the shared fuzz test per operation (these bodies are large); make fuzz sets more.
EXAMPLES = int(os.environ.get("PIXELSERVE_FUZZ_EXAMPLES", "12"))


def test_octoai_operations_never_answer_5xx(tmp_path, tiny_cache):
    app = create_app(make_settings(tmp_path, tiny_cache, max_image_pixels=1024 * 1024), engine=InstantEngine())
    with live_server(app) as port:
        with app.state.sessions() as session:
            _, key = create_key(session, "fuzz", app.state.auth.secret)
        base = f"http://127.0.0.1:{port}"
        schema = schemathesis.openapi.from_url(base + "/openapi.json")
        calls = collections.Counter()
        for result in schema.get_all_operations():
            operation = result.ok()
            if not operation.path.startswith(("/generate", "/v1/assets")):
                continue

            @given(case=operation.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def fuzz(case):
                response = case.call(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"})
                calls[operation.label] += 1
                assert response.status_code < 500 or response.status_code == 501, (  # 501: said not supported
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}")

            fuzz()
    assert len(calls) >= 7  # generate, the five asset operations, upload and download
