"""Several API replicas on one PostgreSQL database: four processes at once reserve credits from one
account, settle the same jobs, and claim jobs from one queue. Nothing is spent twice, settled
twice or run twice."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from pixelserve.db.crud import studio as crud
from pixelserve.db.crud.credits import CreditPolicy
from pixelserve.db.models import utcnow
from pixelserve.db.models_studio import CreditEntry, StudioJob
from pixelserve.db.session import make_engine, make_sessionmaker, open_database
from pixelserve.service.credits import CreditService

pytestmark = pytest.mark.postgres

PROCESSES = 4
OWNER = 1
START = 100  # credits
COST = 3
POLICY = CreditPolicy(daily_amount=0, monthly_amount=0, initial_default=START)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)

_barrier = None


def _init(barrier) -> None:
    global _barrier
    _barrier = barrier


def _sessions(url: str):
    return make_sessionmaker(make_engine(url))


def _credits(url: str) -> CreditService:
    return CreditService(_sessions(url), POLICY, image_cost={}, upscale_cost={}, clock=lambda: NOW)


def _reserve_many(url: str, worker: int, attempts: int) -> list[str]:
    """One replica: reserve COST credits ``attempts`` times; the job ids it got credits for."""
    svc = _credits(url)
    got = []
    _barrier.wait(60)
    for i in range(attempts):
        job_id = f"job-{worker}-{i}"
        with svc.sessions() as s:
            try:
                svc.reserve(s, OWNER, job_id, COST)
            except Exception as e:  # PaymentRequired: the account is empty; anything else fails the test
                if type(e).__name__ != "PaymentRequired":
                    raise
                continue
            s.commit()
        got.append(job_id)
    return got


def _settle_all(url: str, job_ids: list[str]) -> int:
    """One replica: settle every job (refunding 1 credit each); how many this replica settled."""
    svc = _credits(url)
    _barrier.wait(60)
    return sum(svc.settle_job(job_id, refund=1) for job_id in job_ids)


def _claim_all(url: str, worker: int) -> list[str]:
    """One replica's idle worker: claim jobs until none is free."""
    sessions = _sessions(url)
    got = []
    _barrier.wait(60)
    while True:
        with sessions() as s:
            job = crud.claim_next(s, f"replica-{worker}", lease_seconds=60)
        if job is None:
            return got
        got.append(job.id)


@pytest.fixture(scope="module")
def pool():
    ctx = multiprocessing.get_context("spawn")  # replicas share nothing but the database
    with ctx.Pool(PROCESSES, initializer=_init, initargs=(ctx.Barrier(PROCESSES),)) as p:
        yield p


def test_credits_are_never_spent_or_settled_twice(pg_url, pool):
    svc = CreditService(open_database(pg_url), POLICY, image_cost={}, upscale_cost={}, clock=lambda: NOW)
    assert svc.balances(OWNER).total == START

    per_replica = pool.starmap(_reserve_many, [(pg_url, w, 20) for w in range(PROCESSES)], chunksize=1)
    reserved = [j for got in per_replica for j in got]
    # 80 attempts at 3 credits on 100: exactly 33 can be paid, whoever wins the races.
    assert len(reserved) == START // COST == len(set(reserved))
    assert svc.balances(OWNER).total == START - COST * len(reserved)

    settled = pool.starmap(_settle_all, [(pg_url, reserved)] * PROCESSES, chunksize=1)
    assert sum(settled) == len(reserved)  # each job settled by exactly one replica, none failed
    assert svc.balances(OWNER).total == START - (COST - 1) * len(reserved)
    with svc.sessions() as s:
        kinds = dict(s.execute(select(CreditEntry.kind, func.count()).group_by(CreditEntry.kind)).all())
        total = s.execute(select(func.sum(CreditEntry.default_delta + CreditEntry.daily_delta
                                          + CreditEntry.monthly_delta))).scalar()
    assert kinds == {"grant": 1, "reset": 2, "reserve": len(reserved), "refund": len(reserved),
                     "settle": len(reserved)}
    assert total == svc.balances(OWNER).total  # the ledger adds up to the balance


def test_each_job_is_claimed_by_one_replica(pg_url, pool):
    sessions = open_database(pg_url)
    now = utcnow()
    with sessions() as s:
        for i in range(40):
            crud.add_job(s, f"pending-{i:02d}", OWNER, "create", {}, 1, [])
        for i in range(5):  # their replica died: leases lapsed a while ago
            crud.add_job(s, f"orphan-{i}", OWNER, "create", {}, 1, [])
        for i in range(5):  # a live replica runs these
            crud.add_job(s, f"live-{i}", OWNER, "create", {}, 1, [])
        s.commit()
        for job in s.scalars(select(StudioJob).where(StudioJob.id.like("orphan-%"))):
            job.status, job.worker_id, job.lease_expires_at = "IN_PROGRESS", "dead", now - timedelta(seconds=5)
        for job in s.scalars(select(StudioJob).where(StudioJob.id.like("live-%"))):
            job.status, job.worker_id, job.lease_expires_at = "IN_PROGRESS", "alive", now + timedelta(minutes=5)
        s.commit()

    per_replica = pool.starmap(_claim_all, [(pg_url, w) for w in range(PROCESSES)], chunksize=1)
    claimed = [j for got in per_replica for j in got]
    assert len(claimed) == len(set(claimed)) == 45  # nothing claimed twice
    assert {j for j in claimed if not j.startswith("live-")} == set(claimed)
    assert sum(1 for got in per_replica if got) >= 2  # the work really was shared
    with sessions() as s:
        rows = {j.id: j for j in s.scalars(select(StudioJob))}
    assert all(rows[j].status == "IN_PROGRESS" and rows[j].worker_id.startswith("replica-") for j in claimed)
    assert all(rows[f"live-{i}"].worker_id == "alive" for i in range(5))
    assert {rows[f"orphan-{i}"].attempts for i in range(5)} == {1}


def test_a_lapsed_lease_is_renewed_only_by_its_holder(pg_url):
    sessions = open_database(pg_url)
    with sessions() as s:
        crud.add_job(s, "j", OWNER, "create", {}, 1, [])
        s.commit()
        job = crud.claim(s, "j", "replica-a", lease_seconds=60)
        first = job.lease_expires_at
        assert crud.renew_leases(s, "replica-b", ["j"]) == 0  # not b's job
        assert crud.renew_leases(s, "replica-a", ["j"], lease_seconds=600) == 1
        later = s.scalar(select(StudioJob.lease_expires_at).where(StudioJob.id == "j"))
    assert later > first + timedelta(seconds=500)
    # Two threads claiming one job by id at once: one wins.
    results = []
    with sessions() as s:
        crud.add_job(s, "k", OWNER, "create", {}, 1, [])
        s.commit()

    def claim(worker):
        with sessions() as s:
            results.append(crud.claim(s, "k", worker) is not None)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
