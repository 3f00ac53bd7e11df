"""A client that hangs up mid-generation: its job is cancelled before the next denoising step (the
UNet is counted: no more than the step in flight runs after the cancel), and nothing is charged
(Karlo: no quota use kept; Studio: the credits reserved are all refunded). A real server on
127.0.0.1, real sockets, the tiny models."""

import json
import socket
import time

import httpx
import pytest
from sqlalchemy import func, select

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from pixelserve.db.models import Job, JobImage, UsageEvent
from pixelserve.db.models_studio import StudioJob
from tests.conftest import make_settings
from tests.security.live import live_server

STEPS = 100


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_cache):
    settings = make_settings(tmp_path_factory.mktemp("disconnect"), tiny_cache, max_batch_size=1,
                             studio_resolutions={"sd": {"1:1": "384x384"}}, studio_steps=STEPS)
    app = create_app(settings)
    with live_server(app) as port:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while httpx.get(base + "/health/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with app.state.sessions() as s:
            _, key = create_key(s, "disconnect", app.state.auth.secret)
        unet_calls, cancels = [], []
        engine = app.state.engine
        engine.registry.get("tiny-sd", "cpu").pipe.unet.register_forward_hook(
            lambda *_: unet_calls.append(time.monotonic()))
        real_cancel = engine.cancel

        def cancel(job_id):  # when the cancel reaches the engine, and how many UNet calls had run
            cancels.append(len(unet_calls))
            return real_cancel(job_id)

        engine.cancel = cancel
        yield {"app": app, "port": port, "key": key, "unet": unet_calls, "cancels": cancels, "base": base}


def hang_up_mid_job(live, path: str, body: dict, headers: dict) -> None:
    """Send the request, wait until a few denoising steps ran, then close the connection."""
    raw = json.dumps(body).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    started = len(live["unet"])
    with socket.create_connection(("127.0.0.1", live["port"])) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{head}"
                  f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw)
        deadline = time.monotonic() + 60
        while len(live["unet"]) < started + 3:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.01)
    # the socket is closed here, mid-job


def wait_for(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def assert_work_stopped(live, before_calls: int):
    wait_for(lambda: live["cancels"])
    at_cancel = live["cancels"].pop()
    wait_for(lambda: live["app"].state.engine.health().running == 0)
    time.sleep(0.5)
    ran = len(live["unet"]) - before_calls
    assert ran < STEPS  # the job did not run to its end
    assert len(live["unet"]) - at_cancel <= 1  # at most the step in flight ran after the cancel


def test_karlo_disconnect_stops_the_job_and_keeps_no_quota_use(live):
    app = live["app"]

    def counts():
        with app.state.sessions() as s:
            return s.scalar(select(func.count()).select_from(UsageEvent)), \
                s.scalar(select(func.count()).select_from(JobImage))

    before, calls = counts(), len(live["unet"])
    hang_up_mid_job(live, "/v2/inference/karlo/t2i", {"version": "v2.0", "prompt": "hang up", "width": 384,
                                                      "height": 384, "num_inference_steps": STEPS},
                    {"Authorization": f"KakaoAK {live['key']}"})
    assert_work_stopped(live, calls)

    def status():
        with app.state.sessions() as s:
            return s.scalar(select(Job.status).where(Job.request["prompt"].as_string() == "hang up"))

    wait_for(lambda: status() == "cancelled")
    assert counts() == before  # no quota use kept, no image recorded
    r = httpx.post(live["base"] + "/v2/inference/karlo/t2i", headers={"Authorization": f"KakaoAK {live['key']}"},
                   json={"version": "v2.0", "prompt": "next", "width": 384, "height": 384,
                         "num_inference_steps": 10}, timeout=120)
    assert r.status_code == 200  # the worker is free again


def test_studio_disconnect_stops_the_job_and_refunds_every_credit(live):
    app = live["app"]
    h = {"X-Api-Key": live["key"]}
    start = httpx.get(live["base"] + "/api/credits", headers=h).json()
    calls = len(live["unet"])
    hang_up_mid_job(live, "/api/images/create", {"prompt": "hang up", "styleId": 1, "ratio": "1:1", "sample": 2}, h)
    assert_work_stopped(live, calls)

    def job():
        with app.state.sessions() as s:
            return s.scalars(select(StudioJob).order_by(StudioJob.created_at.desc())).first()

    wait_for(lambda: job() is not None and job().status == "FAILED")
    assert "cancel" in job().error
    assert httpx.get(live["base"] + "/api/credits", headers=h).json() == start  # reserved, then all refunded


def test_a_client_hanging_up_mid_body_is_not_an_error(live, caplog):
    """Half a body, then the socket closes: a normal event, logged at debug, not an ERROR with a
    traceback (nor an answer of 500)."""
    caplog.set_level("DEBUG", logger="pixelserve")
    raw = json.dumps({"version": "v2.0", "prompt": "a cat " * 200}).encode()
    with socket.create_connection(("127.0.0.1", live["port"])) as s:
        s.sendall(f"POST /v2/inference/karlo/t2i HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Authorization: KakaoAK {live['key']}\r\nContent-Length: {len(raw)}\r\n\r\n".encode()
                  + raw[: len(raw) // 2])
        time.sleep(0.2)
    wait_for(lambda: any("hung up" in r.getMessage() for r in caplog.records), timeout=10)
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []
