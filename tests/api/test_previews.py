"""Live previews on the bus: a job's progress events carry a small JPEG every PIXELSERVE_PREVIEW_EVERY
steps (engine/post/previews.py), and none when it is 0."""

import io
import time

from fastapi.testclient import TestClient
from PIL import Image

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from tests.conftest import make_settings, wait_ready

#: Larger than a preview's 256 px, so that the downscale shows; 5 steps: the default (every 5th step)
#: would make one, so the test of 0 shows the setting is read.
BODY = {"prompt": "a cat", "width": 384, "height": 320, "steps": 5}


def progress_events(tmp_path, tiny_cache, **settings) -> list:
    app = create_app(make_settings(tmp_path, tiny_cache, octoai_extra_sizes="384x320", **settings))
    events = []
    app.state.events.subscribe("collect", events.append)
    with TestClient(app) as client:
        wait_ready(client)
        with app.state.sessions() as s:
            _, key = create_key(s, "previews", app.state.auth.secret)
        r = client.post("/generate/sd", headers={"Authorization": f"Bearer {key}"}, json=BODY)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 10
        while not any(e.type == "finished" for e in events) and time.monotonic() < deadline:
            time.sleep(0.02)
    assert [e.type for e in events][-1] == "finished"
    return [e for e in events if e.type == "progress"]


def test_progress_events_carry_a_jpeg_preview_every_n_steps(tmp_path, tiny_cache):
    progress = progress_events(tmp_path, tiny_cache, preview_every=2)
    assert [e.data["step"] for e in progress] == [1, 2, 3, 4, 5]
    assert [e.data["step"] for e in progress if "preview" in e.data] == [2, 4]
    for e in progress:
        if "preview" in e.data:
            image = Image.open(io.BytesIO(e.data["preview"]))
            assert image.format == "JPEG"
            assert image.size == (256, 213)  # 384 x 320 scaled to 256 on its longer side


def test_preview_every_zero_turns_them_off(tmp_path, tiny_cache, monkeypatch):
    monkeypatch.setenv("PIXELSERVE_PREVIEW_EVERY", "0")
    progress = progress_events(tmp_path, tiny_cache)
    assert [e.data["step"] for e in progress] == [1, 2, 3, 4, 5]
    assert not any("preview" in e.data for e in progress)
