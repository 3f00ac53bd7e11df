"""Out of device memory, in every dialect: that request fails with a clear, retryable error in the
vendor's shape (503, Retry-After), nothing is charged, and the server goes on serving. (The batch
retried one job at a time: tests/engine/runners/test_batching.py.)"""

import pytest
import torch

from tests.api.studio.conftest import studio_client  # noqa: F401  (a fixture: the server at small sizes)
from tests.api.studio.helpers import balances

KARLO = ("/v2/inference/karlo/t2i", {"version": "v2.0", "prompt": "a cat", "width": 384, "height": 384,
                                     "num_inference_steps": 10}, lambda key: {"Authorization": f"KakaoAK {key}"})
STUDIO = ("/api/images/create", {"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 2},
          lambda key: {"X-Api-Key": key})


@pytest.mark.parametrize("path, body, auth", [KARLO, STUDIO], ids=["karlo", "studio"])
def test_out_of_memory_is_a_clear_503_charges_nothing_and_the_server_stays_up(studio_client, monkeypatch,  # noqa: F811
                                                                               path, body, auth):
    from pixelserve.db.crud.keys import create_key
    from tests.security.state import snapshot

    app = studio_client.app
    with app.state.sessions() as s:
        _, key = create_key(s, "oom", app.state.auth.secret)
    h = auth(key)
    start = balances(studio_client, {"X-Api-Key": key})
    engine = app.state.engine
    real = engine._run

    def out_of_memory(batch, device, loop):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 24.00 GiB (simulated)")

    monkeypatch.setattr(engine, "_run", out_of_memory)
    before = snapshot(app)
    r = studio_client.post(path, json=body, headers=h)
    assert r.status_code == 503, r.text
    assert "out of memory" in r.text and "smaller" in r.text
    assert int(r.headers["retry-after"]) >= 1
    assert balances(studio_client, {"X-Api-Key": key}) == start  # Studio: reserved, then refunded
    after = snapshot(app)
    assert after["files"] == before["files"]  # no image stored
    assert after["rows"]["usage_events"] == before["rows"]["usage_events"]  # no quota use kept

    monkeypatch.setattr(engine, "_run", real)
    assert studio_client.post(path, json=body, headers=h).status_code == 200  # still serving
