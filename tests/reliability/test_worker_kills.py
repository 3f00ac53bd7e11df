"""kill -9 of the engine worker at random moments across a stream of Studio jobs: afterwards
jobs submitted = completed + failed-and-refunded, and the credits balance to the unit.

CI kills it a few times; ``make soak`` runs the same test with 50 kills (PIXELSERVE_SOAK_KILLS).
"""

import os
import random
import signal
import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pixelserve.app import create_app
from pixelserve.db.models_studio import StudioImage
from tests.api.studio.conftest import SMALL_SETTINGS, new_key
from tests.api.studio.helpers import CREATE, balances
from tests.conftest import make_settings, wait_ready

KILLS = int(os.environ.get("PIXELSERVE_SOAK_KILLS", "3"))


def test_worker_kills_lose_no_job_and_charge_nothing_twice(tmp_path, tiny_cache):
    settings = make_settings(tmp_path, tiny_cache, engine="process", **SMALL_SETTINGS)
    rng = random.Random(1234)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wait_ready(client, timeout=300)
        engine = client.app.state.engine
        _, key = new_key(client.app)
        headers = {"X-Api-Key": key}
        start = balances(client, headers)
        killed, done = [], threading.Event()

        def killer():
            while len(killed) < KILLS and not done.is_set():
                time.sleep(rng.uniform(0.3, 1.5))
                pid = engine.worker_pid
                if engine.health().ready and pid not in killed:
                    killed.append(pid)
                    os.kill(pid, signal.SIGKILL)

        thread = threading.Thread(target=killer)
        thread.start()
        statuses, lock = [], threading.Lock()
        deadline = time.monotonic() + 60 + 20 * KILLS

        def client_stream(n: int):  # three clients at once, so some jobs meet a worker that is restarting
            i = 0
            while (len(killed) < KILLS or i < 3) and time.monotonic() < deadline:
                r = client.post(CREATE, headers=headers, json={"prompt": f"client {n} job {i}", "ratio": "1:1",
                                                               "sample": 1, "styleId": 1})
                i += 1
                assert r.status_code in (200, 500, 503), r.text
                if r.status_code == 200:
                    assert [im["generationStatus"] for im in r.json()["images"]] == ["COMPLETED"]
                with lock:
                    statuses.append(r.status_code)
                if r.status_code == 503:
                    time.sleep(0.2)  # the new worker is loading: a client backs off (Retry-After)

        clients = [threading.Thread(target=client_stream, args=(n,)) for n in range(3)]
        try:
            for t in clients:
                t.start()
            for t in clients:
                t.join(deadline - time.monotonic() + 60)
        finally:
            done.set()
            thread.join(60)
        end = balances(client, headers)
        with client.app.state.sessions() as s:
            by_status = dict(s.execute(select(StudioImage.status, func.count())
                                       .group_by(StudioImage.status)).all())
    completed = statuses.count(200)
    assert len(killed) == KILLS and engine.restarts >= KILLS
    assert completed >= 1
    spent = sum(start[k] - end[k] for k in ("dailyCredit", "monthlyCredit", "defaultCredit"))
    assert spent == completed  # tiny-sd costs 1 credit per image: every completed image paid once
    assert by_status.get("COMPLETED", 0) == completed  # and every other job is recorded failed (refunded)
    assert set(by_status) <= {"COMPLETED", "FAILED"}
