"""Faults in the parts a server leans on: the image store stops taking writes (a full or read-only
disk, the S3 server killed and restarted), the database goes away (PostgreSQL stopped and started,
SQLite refusing writes). While a fault lasts every dialect answers a clean 503 with Retry-After in
its vendor's shape; nothing is charged and nothing is half-written; once it ends the next request
succeeds, with no restart. The ledger then holds: jobs = completed + failed-and-refunded, and the
credits balance to the unit.

(The engine worker that hangs mid-step: tests/engine/runners/test_supervised.py,
``test_a_hung_worker_loses_its_lease_and_the_job_moves_to_a_new_one``.)
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import os
import pathlib
import shutil
import sqlite3
import subprocess
import tempfile
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from pixelserve.db.models import Job, JobImage, UsageEvent
from pixelserve.db.models_studio import CreditEntry, StudioJob
from pixelserve.settings import Settings
from tests.api.studio.helpers import balances
from tests.api.studio.test_leases import SlowEngine
from tests.conftest import TEST_STORE
from tests.storage import seaweed

#: One small request per dialect: (name, path, body, headers for a key).
REQUESTS = [
    ("karlo", "/v2/inference/karlo/t2i",
     {"version": "v2.0", "prompt": "a cat", "width": 384, "height": 384, "num_inference_steps": 10,
      "return_type": "base64_string"}, lambda key: {"Authorization": f"KakaoAK {key}"}),
    ("octoai", "/generate/sd", {"prompt": "a cat", "width": 512, "height": 512, "steps": 2},
     lambda key: {"Authorization": f"Bearer {key}"}),
    ("studio", "/api/images/create", {"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 1},
     lambda key: {"X-Api-Key": key}),
]
#: The error body each vendor answers a 503 with.
SHAPES = {
    "karlo": lambda b: b["code"] == -7 and isinstance(b["msg"], str) and set(b) == {"code", "msg"},
    "octoai": lambda b: isinstance(b["detail"], str) and set(b) == {"detail"},
    "studio": lambda b: (b["statusCode"] == 503 and b["error"] == "Service Unavailable"
                         and isinstance(b["message"], str)),
}
RECOVERY_BOUND_S = 30


def server(data_dir, **settings) -> TestClient:
    """A server on a fake engine (grey images at once): the faults are in what it leans on. Its
    database is the SQLite file unless a test names another (whatever PIXELSERVE_TEST_DB says)."""
    settings.setdefault("database_url", f"sqlite:///{data_dir / 'pixelserve.db'}")
    return TestClient(create_app(Settings(data_dir=data_dir, studio_resolutions={"sd": {"1:1": "64x64"}},
                                          studio_daily_credit=1000, **settings), engine=SlowEngine(0)))


def new_key(app) -> str:
    with app.state.sessions() as s:
        return create_key(s, "faults", app.state.auth.secret)[1]


def ask(client, key) -> dict[str, object]:
    return {name: client.post(path, json=body, headers=auth(key)) for name, path, body, auth in REQUESTS}


def assert_clean_503s(answers: dict, fault: str) -> None:
    for name, r in answers.items():
        print(f"{fault} {name}: {r.status_code} Retry-After={r.headers.get('retry-after')} {r.text}")
        assert r.status_code == 503, (name, r.text)
        assert int(r.headers["retry-after"]) >= 1, name
        assert SHAPES[name](r.json()), (name, r.text)


def recover(client, key, fault: str) -> float:
    """Seconds from the fault's end until every dialect answers 200 again (asked in a loop, bounded)."""
    start = time.monotonic()
    pending = {name for name, *_ in REQUESTS}
    attempts = 0
    while pending:
        assert time.monotonic() - start < RECOVERY_BOUND_S, f"{fault}: {pending} not back after the fault"
        attempts += 1
        for name, path, body, auth in REQUESTS:
            if name in pending and client.post(path, json=body, headers=auth(key)).status_code == 200:
                pending.discard(name)
        if pending:
            time.sleep(0.1)
    took = time.monotonic() - start
    print(f"{fault}: every dialect back to 200 {took:.2f} s after the fault ended ({attempts} round(s))")
    return took


def check_ledger(client, key, start_balances: dict, *, ok: int, store_failed: int) -> dict:
    """jobs = completed + failed-and-refunded per dialect; quota kept by completed jobs alone; each
    Studio job reserved and settled once (and refunded when it failed); credits spent = the completed
    Studio images' cost, to the unit."""
    app = client.app
    with app.state.sessions() as s:
        jobs = collections.Counter(s.execute(select(Job.dialect, Job.status)).all())
        images = s.scalar(select(func.count()).select_from(JobImage))
        quota_uses = s.scalar(select(func.count()).select_from(UsageEvent))
        studio = {j.id: (j.status, j.cost_per_image) for j in s.scalars(select(StudioJob))}
        entries = collections.defaultdict(list)
        for e in s.scalars(select(CreditEntry).where(CreditEntry.job_id.is_not(None))):
            entries[e.job_id].append((e.kind, e.default_delta + e.daily_delta + e.monthly_delta))
    spent = sum(start_balances[k] - v for k, v in balances(client, {"X-Api-Key": key}).items()
                if k in ("dailyCredit", "monthlyCredit", "defaultCredit"))
    report = dict(jobs=dict(jobs), quota_uses=quota_uses, credits_spent=spent)
    print(f"ledger: {report}")
    for name, *_ in REQUESTS:
        done, failed = jobs[(name, "succeeded")], jobs[(name, "failed")]
        assert (done, failed) == (ok, store_failed), (name, report)
        assert sum(n for (d, _), n in jobs.items() if d == name) == done + failed, (name, report)  # none half-way
    assert quota_uses == ok * len(REQUESTS), report
    assert images == ok * len(REQUESTS), report  # a completed job keeps its images; a failed one none
    assert sorted(st for st, _ in studio.values()) == sorted(["COMPLETED"] * ok + ["FAILED"] * store_failed)
    for job_id, (status, cost) in studio.items():
        kinds = sorted(k for k, _ in entries[job_id])
        movement = sum(d for _, d in entries[job_id])
        if status == "COMPLETED":
            assert kinds == ["reserve", "settle"] and movement == -cost, (job_id, entries[job_id])
        else:
            assert kinds == ["refund", "reserve", "settle"] and movement == 0, (job_id, entries[job_id])
    assert spent == sum(cost for status, cost in studio.values() if status == "COMPLETED")  # 1 a 64 px image
    return report


# -- the image store -------------------------------------------------------------------------------

@functools.cache
def can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    with tempfile.TemporaryDirectory() as d:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d], capture_output=True)
        if done.returncode != 0:
            return False
        subprocess.run(["umount", d], check=True)
        return True



@contextlib.contextmanager
def small_disk(folder: pathlib.Path, size_kb: int = 512):
    """A small tmpfs of its own at ``folder`` (the image store's root): a disk that can really fill up
    or turn read-only. Where mounting is not allowed, None: the fault is then raised by the writes."""
    folder.mkdir(parents=True, exist_ok=True)
    if not can_mount():
        yield None
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@contextlib.contextmanager
def store_fault(root: pathlib.Path, disk, kind: str, monkeypatch):
    """While inside, writes to the store's root fail: the tmpfs filled up or remounted read-only; or
    (no tmpfs) every file write under the root raises the same OSError the kernel would."""
    if disk is None:
        code = errno.ENOSPC if kind == "full" else errno.EROFS
        real = pathlib.Path.write_bytes

        def refused(self, data):
            if pathlib.Path(self).resolve().is_relative_to(root):
                raise OSError(code, os.strerror(code), str(self))
            return real(self, data)

        with monkeypatch.context() as mp:
            mp.setattr(pathlib.Path, "write_bytes", refused)
            yield
        return
    if kind == "full":
        filler = disk / "filler.bin"
        with open(filler, "wb") as f:
            with contextlib.suppress(OSError):  # ENOSPC: the disk is full
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        try:
            yield
        finally:
            filler.unlink()  # space again
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        try:
            yield
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)


@pytest.mark.skipif(TEST_STORE != "local", reason="the local disk's faults (PIXELSERVE_TEST_STORE puts files in S3)")
@pytest.mark.parametrize("kind", ["full", "read-only"])
def test_a_full_or_read_only_disk_answers_503s_charges_nothing_and_recovers(tmp_path, monkeypatch, kind):
    with small_disk(tmp_path / "images") as disk, server(tmp_path) as client:
        key = new_key(client.app)
        start = balances(client, {"X-Api-Key": key})
        assert all(r.status_code == 200 for r in ask(client, key).values())
        root = client.app.state.store.root
        before = sorted(p for p in root.rglob("*") if p.is_file())
        with store_fault(root, disk, kind, monkeypatch):
            assert_clean_503s(ask(client, key), f"disk {kind} ({'tmpfs' if disk else 'writes raise'})")
            after = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "filler.bin")
            assert after == before  # no image, no half-written .part file
        recover(client, key, f"disk {kind}")
        check_ledger(client, key, start, ok=2, store_failed=1)


@pytest.fixture
def own_seaweed():
    """A SeaweedFS of this test's own (the run's shared one is not killed under other tests)."""
    reason = seaweed.unavailable()
    if reason:
        pytest.skip(reason)
    s3 = seaweed.SeaweedS3(seaweed.find_weed()).start()
    yield s3
    s3.stop()


def test_the_s3_server_killed_and_restarted_answers_503s_then_recovers(tmp_path, own_seaweed):
    with server(tmp_path, **own_seaweed.store_settings(seaweed.BUCKET)) as client:
        key = new_key(client.app)
        start = balances(client, {"X-Api-Key": key})
        assert all(r.status_code == 200 for r in ask(client, key).values())
        own_seaweed.kill()
        assert_clean_503s(ask(client, key), "S3 server killed")
        began = time.monotonic()
        own_seaweed.restart()  # returns once it takes writes again
        print(f"S3 server restarted: taking writes {time.monotonic() - began:.2f} s after its start")
        recover(client, key, "S3 server restarted")
        check_ledger(client, key, start, ok=2, store_failed=1)


# -- the database ----------------------------------------------------------------------------------

@contextlib.contextmanager
def sqlite_refuses_writes(engine):
    """The SQLite file turns read-only (or its disk fails) under a running server: every write the
    server makes fails as SQLite fails it. (Root writes through chmod, and a read-only remount waits
    for the server to close its file: the refusal is raised where the driver would raise it.)"""

    def refuse(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            err = sqlite3.OperationalError("attempt to write a readonly database")
            err.sqlite_errorcode = sqlite3.SQLITE_READONLY
            raise err

    event.listen(engine, "before_cursor_execute", refuse)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", refuse)


def test_a_read_only_sqlite_database_answers_503s_writes_nothing_and_recovers(tmp_path):
    from tests.security.state import snapshot

    with server(tmp_path) as client:
        key = new_key(client.app)
        start = balances(client, {"X-Api-Key": key})
        assert all(r.status_code == 200 for r in ask(client, key).values())
        before = snapshot(client.app)
        with sqlite_refuses_writes(client.app.state.sessions.kw["bind"]):
            assert_clean_503s(ask(client, key), "SQLite read-only")
        assert snapshot(client.app) == before  # no quota use, no job, no credit movement, no file
        recover(client, key, "SQLite writable again")
        check_ledger(client, key, start, ok=2, store_failed=0)


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of this test's own, to stop and start under a running server."""
    from tests.db import pg

    reason = pg.unavailable()
    if reason:
        pytest.skip(reason)
    cluster = pg.PostgresServer(pg.find_bin_dir()).start()
    yield cluster
    cluster.stop()


def test_postgres_stopped_and_started_answers_503s_writes_nothing_and_recovers(tmp_path, own_postgres):
    from tests.security.state import snapshot

    url = own_postgres.create_database("faults")
    with server(tmp_path, database_url=url) as client:
        key = new_key(client.app)
        start = balances(client, {"X-Api-Key": key})
        assert all(r.status_code == 200 for r in ask(client, key).values())
        before = snapshot(client.app)
        own_postgres.down()
        try:
            assert_clean_503s(ask(client, key), "PostgreSQL stopped")
        finally:
            began = time.monotonic()
            own_postgres.up()
            print(f"PostgreSQL started: accepting connections {time.monotonic() - began:.2f} s after its start")
        recover(client, key, "PostgreSQL started")
        assert snapshot(client.app)["rows"]["jobs"] == before["rows"]["jobs"] + len(REQUESTS)  # the recovery's only
        check_ledger(client, key, start, ok=2, store_failed=0)
