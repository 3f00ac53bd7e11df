"""The jobs API on a real server (127.0.0.1, the tiny models): a job's status while its synchronous
request runs, its events as Server-Sent Events (read with httpx-sse), Last-Event-ID replays,
cancelling, listing, and nobody else's jobs."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from httpx_sse import connect_sse

from pixelserve.app import create_app
from pixelserve.db.crud.jobs import create_job
from pixelserve.db.crud.keys import create_key
from pixelserve.db.models import Job, UsageEvent
from pixelserve.serving import server_config
from tests.api.studio.conftest import SMALL_SETTINGS, new_key
from tests.api.studio.helpers import CREATE, balances
from tests.api.studio.test_jobs import NeverReadyEngine
from tests.conftest import make_settings

#: Enough steps for a tiny-model job to run a second or more on a CPU: long enough to watch it.
SLOW_STEPS = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_cache):
    settings = make_settings(tmp_path_factory.mktemp("jobs"), tiny_cache, octoai_extra_sizes="64x64")
    app = create_app(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(server_config(app, settings, "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not (server.started and httpx.get(f"{base}/health/ready").status_code == 200):
        assert time.monotonic() < deadline, "the server did not get ready"
        time.sleep(0.05)
    with app.state.sessions() as s:
        mine, key = create_key(s, "mine", app.state.auth.secret)
        _, other = create_key(s, "other", app.state.auth.secret)
    with httpx.Client(base_url=base, timeout=60) as client:
        yield app, client, key, other, mine.id
    server.should_exit = True
    thread.join(30)


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def generate(client: httpx.Client, key: str, steps: int, job_id: str | None = None) -> httpx.Response:
    headers = {**bearer(key), **({"X-Job-Id": job_id} if job_id else {})}
    return client.post("/generate/sd", headers=headers,
                       json={"prompt": "a cat", "width": 64, "height": 64, "steps": steps})


def read_events(client: httpx.Client, path: str, headers: dict, stop_after: int | None = None) -> list:
    """The stream's events (as httpx-sse parses them), up to its end or ``stop_after`` events."""
    out = []
    with connect_sse(client, "GET", path, headers=headers) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for sse in source.iter_sse():
            out.append(sse)
            if stop_after is not None and len(out) >= stop_after:
                break
    return out


def server_id(app, client_id: str) -> str:
    with app.state.sessions() as s:
        return s.query(Job).filter_by(client_id=client_id).one().id


def wait_for(client: httpx.Client, path: str, key: str, ok, answer, timeout: float = 60) -> dict:
    """Polls GET ``path`` until ``ok(body)``, while the request ``answer`` (a future) still runs."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(path, headers=bearer(key))
        if r.status_code == 200 and ok(r.json()):
            return r.json()
        assert not answer.done(), answer.result().text
        assert time.monotonic() < deadline, r.text
        time.sleep(0.02)


def test_a_running_jobs_status_and_events_rise_to_the_total_then_finished(server):
    app, client, key, _, _ = server
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(generate, client, key, SLOW_STEPS, "watch-1")
        # The caller's own X-Job-Id works while its synchronous request still runs.
        running = wait_for(client, "/v1/jobs/watch-1", key, lambda b: b["status"] == "running" and b["step"] >= 1,
                           answer)
        assert running["id"] == "watch-1" and running["steps"] == SLOW_STEPS and running["images"] == []
        assert running["finished_at"] is None and running["eta_seconds"] is not None
        events = read_events(client, "/v1/jobs/watch-1/events", bearer(key))
        assert answer.result().status_code == 200 and answer.result().headers["X-Job-Id"] == "watch-1"
    types = [e.event for e in events]
    assert types == ["queued", "started"] + ["progress"] * SLOW_STEPS + ["finished"]
    assert [int(e.id) for e in events] == list(range(1, len(events) + 1))
    steps = [json.loads(e.data) for e in events if e.event == "progress"]
    assert [s["step"] for s in steps] == list(range(1, SLOW_STEPS + 1)) and {s["steps"] for s in steps} == {SLOW_STEPS}
    finished = json.loads(events[-1].data)
    assert len(finished["images"]) == 1 and isinstance(finished["images"][0]["seed"], int)
    image = client.get(finished["images"][0]["url"])
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    done = client.get("/v1/jobs/watch-1", headers={"X-Api-Key": key}).json()  # any dialect's way to send the key
    assert done["status"] == "succeeded" and done["step"] == done["steps"] == SLOW_STEPS
    assert [im["seed"] for im in done["images"]] == [finished["images"][0]["seed"]]
    with app.state.sessions() as s:  # a succeeded job stays charged (the cancelled one below does not)
        assert s.query(UsageEvent).filter_by(job_id=server_id(app, "watch-1")).count() == 1


def test_reconnecting_with_last_event_id_replays_only_the_missed_ones(server):
    _, client, key, _, _ = server
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(generate, client, key, SLOW_STEPS, "replay-1")
        wait_for(client, "/v1/jobs/replay-1", key, lambda b: True, answer)
        first = read_events(client, "/v1/jobs/replay-1/events", bearer(key), stop_after=5)  # then hangs up
        last = first[-1].id
        rest = read_events(client, "/v1/jobs/replay-1/events", {**bearer(key), "Last-Event-ID": last})
        assert answer.result().status_code == 200
    ids = [int(e.id) for e in first + rest]
    assert ids == list(range(1, len(ids) + 1))  # nothing missed, nothing twice
    assert rest[0].id == str(int(last) + 1) and rest[-1].event == "finished"
    # After the job ended: from any id, only what follows; after the final one, 204 (EventSource stops).
    tail = read_events(client, "/v1/jobs/replay-1/events", {**bearer(key), "Last-Event-ID": str(ids[-3])})
    assert [e.id for e in tail] == [str(ids[-2]), str(ids[-1])]
    r = client.get("/v1/jobs/replay-1/events", headers={**bearer(key), "Last-Event-ID": str(ids[-1])})
    assert r.status_code == 204


def test_another_keys_job_and_an_unknown_one_are_404(server):
    app, client, key, other, _ = server
    assert generate(client, key, 2, "private-1").status_code == 200
    by_server_id = client.get(f"/v1/jobs/{server_id(app, 'private-1')}", headers=bearer(key))
    assert by_server_id.status_code == 200 and by_server_id.json()["id"] == "private-1"
    for job_id in ("private-1", server_id(app, "private-1"), "never-made"):
        for method, path in (("GET", f"/v1/jobs/{job_id}"), ("GET", f"/v1/jobs/{job_id}/events"),
                             ("DELETE", f"/v1/jobs/{job_id}")):
            r = client.request(method, path, headers=bearer(other))
            assert r.status_code == 404, (method, path, r.text)
            assert r.json()["error"]["type"] == "not_found"
    assert client.get("/v1/jobs/never-made", headers=bearer(key)).status_code == 404
    unauth = client.get("/v1/jobs/private-1")
    assert unauth.status_code == 401 and unauth.json()["error"]["type"] == "unauthorized"
    assert client.get("/v1/jobs/private-1", headers=bearer("psk_not_a_key")).status_code == 401


def test_a_cancelled_job_stops_ends_cancelled_and_is_not_charged(server):
    app, client, key, _, _ = server
    with ThreadPoolExecutor(2) as pool:
        answer = pool.submit(generate, client, key, 200, "cancel-1")
        running = wait_for(client, "/v1/jobs/cancel-1", key, lambda b: b["status"] == "running" and b["step"] >= 1,
                           answer)
        waiting = pool.submit(generate, client, key, 199, "cancel-2")  # queued behind it (one device)
        queued = wait_for(client, "/v1/jobs/cancel-2", key, lambda b: b["queue_position"] is not None, waiting)
        assert queued["status"] == "queued" and queued["queue_position"] == 0 and queued["step"] == 0
        job_id = server_id(app, "cancel-1")
        with app.state.sessions() as s:  # charged while it runs: the quota row is there
            assert s.query(UsageEvent).filter_by(job_id=job_id).count() == 1
        r = client.delete("/v1/jobs/cancel-2", headers=bearer(key))  # queued: it never starts
        assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["started_at"] is None, r.text
        assert waiting.result().status_code == 499
        r = client.delete("/v1/jobs/cancel-1", headers=bearer(key))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "cancelled" and r.json()["images"] == []
        assert 1 <= r.json()["step"] < 200 and running["step"] <= r.json()["step"]
        assert answer.result().status_code == 499  # the waiting request ends with the dialect's cancel answer
    events = read_events(client, "/v1/jobs/cancel-1/events", bearer(key))
    assert events[-1].event == "cancelled" and json.loads(events[-1].data)["error"]
    assert max(json.loads(e.data)["step"] for e in events if e.event == "progress") < 200
    assert [e.event for e in read_events(client, "/v1/jobs/cancel-2/events", bearer(key))] == ["queued", "cancelled"]
    with app.state.sessions() as s:
        for cancelled in (job_id, server_id(app, "cancel-2")):  # released: not charged
            assert s.query(UsageEvent).filter_by(job_id=cancelled).count() == 0
    again = client.delete("/v1/jobs/cancel-1", headers=bearer(key))
    assert again.status_code == 409 and again.json()["error"]["type"] == "conflict"


def test_the_list_is_the_callers_own_newest_first_in_pages(server):
    _, client, _, other, _ = server
    made = [generate(client, other, 2).headers["X-Job-Id"] for _ in range(3)]
    page = client.get("/v1/jobs", params={"limit": 2}, headers={"X-Api-Key": other}).json()
    assert [j["id"] for j in page["data"]] == made[::-1][:2] and page["has_more"] is True
    assert all(j["status"] == "succeeded" and len(j["images"]) == 1 for j in page["data"])
    rest = client.get("/v1/jobs", params={"limit": 2, "before": page["data"][-1]["id"]},
                      headers={"Authorization": f"KakaoAK {other}"}).json()
    assert [j["id"] for j in rest["data"]] == [made[0]] and rest["has_more"] is False
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "x"}):
        r = client.get("/v1/jobs", params=bad, headers=bearer(other))
        assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_request"
    assert client.get("/v1/jobs", params={"before": "nope"}, headers=bearer(other)).status_code == 404


def test_previews_go_out_after_their_progress_event_when_asked(server):
    """A synthetic job on the bus (the engine's previews are another part's): its preview bytes reach a
    stream opened with ?preview=true as a base64 JPEG right after their progress event, and no other."""
    app, client, key, _, key_id = server
    with app.state.sessions() as s:
        create_job(s, "synthetic-preview", dialect="octoai", model="sd", request={"steps": 2}, api_key_id=key_id)
    jpeg = b"\xff\xd8\xff\xe0 not really a JPEG \xff\xd9"
    bus = app.state.events

    def publish(type, **data):
        bus._loop.call_soon_threadsafe(lambda: bus.publish(type, "synthetic-preview", dialect="octoai", model="sd",
                                                           caller_id=key_id, **data))

    publish("queued", queue_position=0)
    publish("started")
    with_previews = []
    with connect_sse(client, "GET", "/v1/jobs/synthetic-preview/events?preview=true", headers=bearer(key)) as source:
        for sse in source.iter_sse():
            with_previews.append(sse)
            if sse.event == "started":  # watching it live: the rest happens now
                publish("progress", step=1, steps=2, preview=jpeg)
                publish("progress", step=2, steps=2)
            elif sse.event == "preview":  # an ended job's previews are dropped (its images are there)
                publish("finished", images=[], timings_ms={})
    assert [e.event for e in with_previews] == ["queued", "started", "progress", "preview", "progress", "finished"]
    preview = json.loads(with_previews[3].data)
    assert base64.b64decode(preview["image"]) == jpeg and preview["step"] == 1 and with_previews[3].id == "3"
    assert "image" not in with_previews[2].data
    # Without ?preview=true none; once the job has ended its previews are gone (its images are there).
    plain = read_events(client, "/v1/jobs/synthetic-preview/events", bearer(key))
    assert [e.event for e in plain] == ["queued", "started", "progress", "progress", "finished"]
    assert [e.event for e in read_events(client, "/v1/jobs/synthetic-preview/events?preview=true", bearer(key))
            ] == [e.event for e in plain]


def test_a_studio_async_job_cancelled_while_it_waits_in_the_queue_is_refunded(tmp_path, tiny_cache):
    """The durable queue's job never reached the engine (whose models never load here): DELETE ends it
    at once, cancelled, and the credits its reservation took come back."""
    app = create_app(make_settings(tmp_path, tiny_cache, **SMALL_SETTINGS), engine=NeverReadyEngine(None))
    with TestClient(app) as client:
        _, key = new_key(app)
        h = {"X-Api-Key": key}
        before = balances(client, h)["dailyCredit"]
        r = client.post(CREATE, headers={**h, "X-Job-Id": "studio-1"},
                        json={"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 2, "async": True})
        assert r.status_code == 200 and r.headers["X-Job-Id"] == "studio-1"
        assert balances(client, h)["dailyCredit"] < before  # reserved up front
        assert client.get("/v1/jobs/studio-1", headers=h).json()["status"] == "queued"
        cancelled = client.delete("/v1/jobs/studio-1", headers=h)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
        assert balances(client, h)["dailyCredit"] == before
        for image in r.json()["images"]:
            got = client.get(f"/api/images/{image['imageId']}", headers=h).json()["images"][0]
            assert got["generationStatus"] == "FAILED" and "cancelled" in got["generationError"]
        assert client.delete("/v1/jobs/studio-1", headers=h).status_code == 409
