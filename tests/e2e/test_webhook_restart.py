"""A webhook pending when the server is killed (SIGKILL, no shutdown) is delivered after a restart,
with the same webhook-id, signed with the key's secret."""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request

from sqlalchemy import create_engine, text
from standardwebhooks import Webhook
from typer.testing import CliRunner

from pixelserve.cli import cli
from tests.api.octoai.helpers import small as octoai_small
from tests.api.webhook_receiver import Receiver
from tests.e2e.test_server import BIN, free_port, get


def start(env, data, port, ready: bool = True) -> subprocess.Popen:
    log = open(data / "server.log", "a")
    proc = subprocess.Popen([BIN / "pixelserve", "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    if not ready:
        return proc
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, (data / "server.log").read_text()
        try:
            if get(f"http://127.0.0.1:{port}/health/ready")[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("server not ready")


def test_a_pending_delivery_survives_a_killed_server(tmp_path, tiny_cache):
    shutil.copytree(tiny_cache, tmp_path / "cache")
    env = {**os.environ, "PIXELSERVE_DATA_DIR": str(tmp_path), "PIXELSERVE_WEBHOOK_ALLOW_PRIVATE": "true",
           "PIXELSERVE_OCTOAI_EXTRA_SIZES": "64x64"}
    runner = CliRunner()
    key = runner.invoke(cli, ["keys", "create", "--name", "hooks"], env=env).stdout.strip().splitlines()[-1]
    rx = Receiver()
    url = rx.answer("/later", 503, 200)  # the first attempt fails: the delivery stays pending
    port = free_port()
    proc = start(env, tmp_path, port)
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/generate/sd", method="POST",
                                     data=json.dumps(octoai_small()).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                                              "X-Webhook-URL": url})
        with urllib.request.urlopen(req, timeout=120) as r:
            job_id = r.headers["X-Job-Id"]
        [first] = rx.wait_for("/later")
        db = create_engine(f"sqlite:///{tmp_path / 'pixelserve.db'}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the 503 is recorded: the next attempt is scheduled
            with db.connect() as c:
                row = c.execute(text("select status, last_status_code from webhook_deliveries")).one()
            if row.last_status_code == 503:
                break
            time.sleep(0.05)
        assert tuple(row) == ("pending", 503)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

        proc = start(env, tmp_path, port, ready=False)  # the outbox is taken up at start, before models load
        _, second = rx.wait_for("/later", 2)
        assert second.headers["webhook-id"] == first.headers["webhook-id"] and second.body == first.body
        secret = runner.invoke(cli, ["keys", "webhook-secret", "1"], env=env).stdout.strip()
        payload = Webhook(secret).verify(second.body, second.headers)
        assert payload["job_id"] == job_id and payload["type"] == "job.finished"
        assert payload["images"][0]["url"].startswith(f"http://127.0.0.1:{port}/v1/images/")  # the listen URL
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with db.connect() as c:
                row = c.execute(text("select status, attempts from webhook_deliveries")).one()
            if row.status == "delivered":
                break
            time.sleep(0.05)
        assert tuple(row) == ("delivered", 2)
        db.dispose()
    finally:
        proc.terminate()
        proc.wait(30)
        rx.close()
