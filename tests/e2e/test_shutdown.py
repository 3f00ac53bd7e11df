"""SIGTERM: the running request finishes (drain), then the server exits cleanly."""

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


def test_sigterm_lets_the_running_request_finish(tmp_path, tiny_cache):
    shutil.copytree(tiny_cache, tmp_path / "cache")
    env = {**os.environ, "PIXELSERVE_DATA_DIR": str(tmp_path), "PIXELSERVE_DRAIN_TIMEOUT_SECONDS": "120"}
    key = subprocess.run([BIN / "pixelserve", "keys", "create", "--name", "drain"], env=env, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen([BIN / "pixelserve", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if get(base + "/health/ready")[0] == 200:
                        break
                except OSError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.1)
            answer = {}

            def long_request():
                body = json.dumps({"version": "v2.0", "prompt": "drain me", "width": 512, "height": 512,
                                   "num_inference_steps": 100, "return_type": "base64_string"}).encode()
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
                assert time.monotonic() < deadline + 60
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            client.join(300)
            assert answer.get("status") == 200 and len(answer["body"]["images"]) == 1
            # uvicorn re-raises the signal once shut down, so the exit status reports SIGTERM.
            assert proc.wait(60) in (0, -signal.SIGTERM)
            assert "Application shutdown complete" in (tmp_path / "server.log").read_text()
            with db.connect() as c:
                assert c.execute(text("select status from jobs")).scalar() == "succeeded"
        finally:
            if proc.poll() is None:
                proc.kill()
