"""SIGTERM: the running request finishes (drain), then the server exits cleanly."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request

from sqlalchemy import create_engine, text

from tests.e2e.test_server import BIN, free_port, get


@contextlib.contextmanager
def served(tmp_path, env):
    """``pixelserve serve`` on a free port, logging to tmp_path/server.log; yields once it is ready
    and kills it on the way out if the test has not stopped it."""
    port = free_port()
    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen([BIN / "pixelserve", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if get(f"http://127.0.0.1:{port}/health/ready")[0] == 200:
                        break
                except OSError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.1)
            yield proc, port
        finally:
            if proc.poll() is None:
                proc.kill()


def test_sigterm_lets_the_running_request_finish(tmp_path, tiny_cache):
    shutil.copytree(tiny_cache, tmp_path / "cache")
    env = {**os.environ, "PIXELSERVE_DATA_DIR": str(tmp_path), "PIXELSERVE_DRAIN_TIMEOUT_SECONDS": "300"}
    key = subprocess.run([BIN / "pixelserve", "keys", "create", "--name", "drain"], env=env, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    with served(tmp_path, env) as (proc, port):
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        answer = {}

        def long_request():
            body = json.dumps({"version": "v2.0", "prompt": "drain me", "width": 384, "height": 384,
                               "num_inference_steps": 50, "return_type": "base64_string"}).encode()
            req = urllib.request.Request(base + "/v2/inference/karlo/t2i", data=body, method="POST", headers={
                "Authorization": f"KakaoAK {key}", "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=300) as r:
                answer["status"], answer["body"] = r.status, json.loads(r.read())

        client = threading.Thread(target=long_request)
        client.start()
        db = create_engine(f"sqlite:///{tmp_path / 'pixelserve.db'}")
        while True:  # wait until the job is denoising, then ask the server to stop
            with db.connect() as c:
                if c.execute(text("select status from jobs")).scalar() == "running":
                    break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        client.join(300)
        assert answer.get("status") == 200 and len(answer["body"]["images"]) == 1
        # uvicorn re-raises the signal once shut down, so the exit status reports SIGTERM.
        assert proc.wait(60) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in (tmp_path / "server.log").read_text()
        with db.connect() as c:
            assert c.execute(text("select status from jobs")).scalar() == "succeeded"


def test_sigterm_past_the_drain_fails_and_refunds_running_jobs_and_flushes_the_database(tmp_path, tiny_cache):
    """Drain timeout 2 s, two long requests running (Karlo, Studio): after SIGTERM new connections
    are refused, the requests still running at the end of the drain are cancelled, their jobs are
    recorded failed/cancelled with nothing charged, and the database is complete on disk (no WAL)."""
    import socket

    shutil.copytree(tiny_cache, tmp_path / "cache")
    env = {**os.environ, "PIXELSERVE_DATA_DIR": str(tmp_path), "PIXELSERVE_DRAIN_TIMEOUT_SECONDS": "2",
           "PIXELSERVE_MAX_BATCH_SIZE": "1", "PIXELSERVE_STUDIO_STEPS": "150",
           "PIXELSERVE_STUDIO_RESOLUTIONS": '{"sd": {"1:1": "384x384"}}'}
    created = subprocess.run([BIN / "pixelserve", "keys", "create", "--name", "drain"], env=env, capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()
    key, key_id = created[-1], int(created[0].split()[2])
    with served(tmp_path, env) as (proc, port):
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        start_credits = json.loads(urllib.request.urlopen(urllib.request.Request(
            base + "/api/credits", headers={"X-Api-Key": key})).read())
        answers = {}

        def call(name, path, body, headers):
            req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json", **headers})
            try:
                with urllib.request.urlopen(req, timeout=300) as r:
                    answers[name] = r.status
            except Exception as e:  # the connection is closed under it
                answers[name] = type(e).__name__

        clients = [
            threading.Thread(target=call, args=("karlo", "/v2/inference/karlo/t2i", {
                "version": "v2.0", "prompt": "cut off", "width": 640, "height": 640,
                "num_inference_steps": 100}, {"Authorization": f"KakaoAK {key}"})),
            threading.Thread(target=call, args=("studio", "/api/images/create", {
                "prompt": "cut off", "styleId": 1, "ratio": "1:1", "sample": 4}, {"X-Api-Key": key})),
        ]
        db = create_engine(f"sqlite:///{tmp_path / 'pixelserve.db'}")

        def wait_for(query, ok):
            while True:
                with db.connect() as c:
                    if ok(c.execute(text(query)).scalar()):
                        return
                assert time.monotonic() < deadline
                time.sleep(0.05)

        # The Karlo job denoising first, then the Studio one queued behind it (sent together, the
        # Studio job could take the device first and finish before the SIGTERM).
        clients[0].start()
        wait_for("select status from jobs where dialect = 'karlo'", lambda status: status == "running")
        clients[1].start()
        wait_for("select count(*) from studio_jobs", bool)
        db.dispose()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        try:  # no longer accepting
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            refused = False
        except OSError:
            refused = True
        assert proc.wait(60) in (0, -signal.SIGTERM)
        for c in clients:
            c.join(60)
    server_log = (tmp_path / "server.log").read_text()
    assert refused, server_log[-3000:]
    assert answers["karlo"] != 200 and answers["studio"] != 200, answers
    assert not (tmp_path / "pixelserve.db-wal").exists() or (tmp_path / "pixelserve.db-wal").stat().st_size == 0
    db = create_engine(f"sqlite:///{tmp_path / 'pixelserve.db'}")
    with db.connect() as c:
        # Both jobs went through the one pipeline: each has its job record, ended as cancelled.
        assert c.execute(text("select dialect, status from jobs order by dialect")).all() == [
            ("karlo", "cancelled"), ("studio", "cancelled")]
        assert c.execute(text("select count(*) from usage_events")).scalar() == 0  # no quota use kept
        assert c.execute(text("select status from studio_jobs")).scalars().all() == ["FAILED"]
        kinds = c.execute(text("select kind from studio_credit_ledger where job_id is not null order by id")).scalars().all()
        assert kinds == ["reserve", "refund", "settle"]
        balances = c.execute(text("select default_credit, daily_credit, monthly_credit from studio_credit_accounts "
                                  "where owner_id = :o"), {"o": key_id}).one()
    assert tuple(balances) == (start_credits["defaultCredit"], start_credits["dailyCredit"],
                               start_credits["monthlyCredit"])
