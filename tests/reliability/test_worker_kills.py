"""kill -9 of the engine worker at random moments across a stream of Karlo and Studio jobs, then
the ledger: jobs submitted = completed + failed-and-refunded, and the charges balance to the unit.

- Karlo: every request is a job row; completed ones keep one quota use and their image, failed ones
  keep neither (released by job id). (Studio jobs use the same key's quota the same way.)
- Studio: every request is a job with one reserve and one settle; a completed job paid its cost,
  a failed one got all of it back (refund by job id, settled once); the balances moved by exactly
  the completed images' cost.

CI kills it a few times; ``make soak`` runs the same test with 50 kills (PIXELSERVE_SOAK_KILLS).
"""

import collections
import os
import random
import signal
import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pixelserve.app import create_app
from pixelserve.db.models import Job, JobImage, UsageEvent
from pixelserve.db.models_studio import CreditEntry, StudioImage, StudioJob
from tests.api.studio.conftest import SMALL_SETTINGS, new_key
from tests.api.studio.helpers import CREATE, balances
from tests.conftest import make_settings, wait_ready

KILLS = int(os.environ.get("PIXELSERVE_SOAK_KILLS", "3"))
T2I = "/v2/inference/karlo/t2i"


def test_worker_kills_lose_no_job_and_charge_nothing_twice(tmp_path, tiny_cache):
    settings = make_settings(tmp_path, tiny_cache, engine="process", **SMALL_SETTINGS)
    rng = random.Random(1234)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wait_ready(client, timeout=300)
        app, engine = client.app, client.app.state.engine
        owner, key = new_key(app)
        headers = {"X-Api-Key": key, "Authorization": f"KakaoAK {key}"}
        start = balances(client, headers)
        killed, done = [], threading.Event()

        def killer():
            while len(killed) < KILLS and not done.is_set():
                time.sleep(rng.uniform(0.3, 4.0))  # some gaps outlast a Karlo job (384 px, 10 steps)
                pid = engine.worker_pid
                if engine.health().ready and pid not in killed:
                    killed.append(pid)
                    os.kill(pid, signal.SIGKILL)

        thread = threading.Thread(target=killer)
        thread.start()
        statuses, lock = collections.defaultdict(list), threading.Lock()
        deadline = time.monotonic() + 60 + 20 * KILLS

        def client_stream(n: int):  # clients at once, so some jobs meet a worker that is restarting
            i = 0
            while (len(killed) < KILLS or i < 3) and time.monotonic() < deadline:
                if n % 3 == 2:
                    dialect, r = "karlo", client.post(T2I, headers=headers, json={
                        "version": "v2.0", "prompt": f"client {n} job {i}", "width": 384, "height": 384,
                        "num_inference_steps": 10, "return_type": "base64_string"})
                else:
                    dialect, r = "studio", client.post(CREATE, headers=headers, json={
                        "prompt": f"client {n} job {i}", "ratio": "1:1", "sample": 1, "styleId": 1})
                i += 1
                assert r.status_code in (200, 500, 503), r.text
                if r.status_code == 503:
                    assert r.headers.get("retry-after")
                with lock:
                    statuses[dialect].append(r.status_code)
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
        with app.state.sessions() as s:
            karlo = dict(s.execute(select(Job.status, func.count()).where(Job.dialect == "karlo")
                                   .group_by(Job.status)).all())
            karlo_images = s.scalar(select(func.count()).select_from(JobImage).join(Job, Job.id == JobImage.job_id)
                                    .where(Job.dialect == "karlo"))
            quota_uses = s.scalar(select(func.count()).select_from(UsageEvent))
            studio = dict(s.execute(select(StudioJob.status, func.count()).group_by(StudioJob.status)).all())
            studio_images = dict(s.execute(select(StudioImage.status, func.count())
                                           .group_by(StudioImage.status)).all())
            ledger = collections.defaultdict(list)
            for e in s.scalars(select(CreditEntry).where(CreditEntry.job_id.is_not(None))):
                ledger[e.job_id].append((e.kind, e.default_delta + e.daily_delta + e.monthly_delta))
            job_status = {j.id: (j.status, j.cost_per_image) for j in s.scalars(select(StudioJob))}

    karlo_ok, studio_ok = statuses["karlo"].count(200), statuses["studio"].count(200)
    report = (f"kills survived: {len(killed)} (restarts {engine.restarts}); karlo jobs {len(statuses['karlo'])}: "
              f"{karlo}; studio jobs {len(statuses['studio'])}: {studio}")
    print("\n" + report)
    assert len(killed) == KILLS and engine.restarts >= KILLS
    assert karlo_ok >= 1 and studio_ok >= 1, report

    # Karlo: submitted = completed + failed, completed ones alone keep a quota use and an image.
    assert sum(karlo.values()) == len(statuses["karlo"]), report
    assert karlo.get("succeeded", 0) == karlo_ok and set(karlo) <= {"succeeded", "failed", "cancelled"}, report
    assert karlo_images == karlo_ok, (karlo_images, report)
    assert quota_uses == karlo_ok + studio_ok, (quota_uses, report)  # one key: completed jobs of both dialects

    # Studio: submitted = completed + failed-and-refunded; each job reserved once and settled once.
    assert sum(studio.values()) == len(statuses["studio"]), report
    assert studio.get("COMPLETED", 0) == studio_ok and set(studio) <= {"COMPLETED", "FAILED"}, report
    assert studio_images.get("COMPLETED", 0) == studio_ok and set(studio_images) <= {"COMPLETED", "FAILED"}
    for job_id, (status, cost) in job_status.items():
        kinds = sorted(kind for kind, _ in ledger[job_id])
        movement = sum(delta for _, delta in ledger[job_id])
        if status == "COMPLETED":
            assert kinds == ["reserve", "settle"] and movement == -cost, (job_id, ledger[job_id])
        else:
            assert kinds == ["refund", "reserve", "settle"] and movement == 0, (job_id, ledger[job_id])
    spent = sum(start[k] - end[k] for k in ("dailyCredit", "monthlyCredit", "defaultCredit"))
    assert spent == studio_ok  # tiny-sd costs 1 credit an image: to the unit
