"""The real server process, as a user runs it: README's flow and the spec's Python sample."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_cache):
    data = tmp_path_factory.mktemp("e2e")
    shutil.copytree(tiny_cache, data / "cache")
    env = {**os.environ, "PIXELSERVE_DATA_DIR": str(data)}
    created = subprocess.run([BIN / "pixelserve", "keys", "create", "--name", "e2e"], env=env,
                             capture_output=True, text=True, check=True)
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    log = open(data / "server.log", "w")
    proc = subprocess.Popen([BIN / "pixelserve", "serve", "--host", "127.0.0.1", "--port", str(port), "--demo-key", key],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    statuses = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                statuses.append(get(base + "/health/ready")[0])
            except OSError:
                pass
            if statuses and statuses[-1] == 200:
                break
            assert proc.poll() is None, (data / "server.log").read_text()
            time.sleep(0.1)
        yield {"base": base, "key": key, "data": data, "ready_statuses": statuses}
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def post(server, path, body, timeout=300):
    req = urllib.request.Request(server["base"] + path, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"KakaoAK {server['key']}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def test_ready_only_once_models_are_loaded(server):
    assert server["ready_statuses"][-1] == 200
    assert set(server["ready_statuses"][:-1]) <= {503}
    assert get(server["base"] + "/health/live")[0] == 200
    assert get(server["base"] + "/docs")[0] == 200


def test_start_up_names_each_dialects_url_and_the_demo_key(server):
    """After the demo banner (as make run starts it): one line per dialect, with its URL and the key."""
    log = (server["data"] / "server.log").read_text()
    banner = log.index("DEMO MODELS")
    lines = [line for line in log[banner:].splitlines() if server["base"] in line]
    for path, header in (("/v2/inference/karlo/t2i", "KakaoAK"), ("/generate/sdxl", "Bearer"),
                         ("/api/images/create", "X-Api-Key")):
        assert any(server["base"] + path in line and f"{header}" in line and server["key"] in line
                   for line in lines), (path, lines)


def test_spec_python_sample(server):
    # The Karlo doc's Python sample, verbatim apart from the base URL.
    response = post(server, "/v2/inference/karlo/t2i", {
        "version": "v2.1", "prompt": "A photo of a cute tiny monster on the beach, daylight.",
        "negative_prompt": "", "height": 1024, "width": 1024})
    result = Image.open(urllib.request.urlopen(response.get("images")[0].get("image")))
    assert result.size == (1024, 1024)
    assert response["images"][0]["image"].startswith(server["base"] + "/v1/images/")


def test_client_disconnect_cancels_the_job(server):
    from sqlalchemy import create_engine, text

    body = json.dumps({"version": "v2.1", "prompt": "long", "width": 1280, "height": 1280,
                       "num_inference_steps": 100}).encode()
    host, port = server["base"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"POST /v2/inference/karlo/t2i HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + f"Authorization: KakaoAK {server['key']}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(1.5)
    db = create_engine(f"sqlite:///{server['data'] / 'pixelserve.db'}")
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        with db.connect() as c:
            status = c.execute(text("select status from jobs where request like '%\"long\"%'")).scalar()
        if status == "cancelled":
            break
        time.sleep(0.2)
    assert status == "cancelled"
    # and the worker is free again right away: a short job completes
    response = post(server, "/v2/inference/karlo/t2i", {"version": "v2.0", "prompt": "x", "width": 384,
                                                        "height": 384, "num_inference_steps": 10}, timeout=60)
    assert len(response["images"]) == 1


def test_spec_python_samples_for_variations_and_inpainting(server, tmp_path, monkeypatch):
    """The doc's Python samples, unchanged apart from the base URL, the key and the file names."""
    import base64
    import io
    import json
    import urllib

    import requests
    from PIL import Image

    REST_API_KEY = server["key"]
    BASE = server["base"]
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (512, 512), (30, 120, 200)).save("original.png")
    Image.new("RGB", (96, 64), (200, 120, 30)).save("image.png")
    mask = Image.new("RGB", (96, 64), "white")
    mask.paste((0, 0, 0), (24, 16, 72, 48))
    mask.save("mask.png")

    # Make variation
    def variations(image):
        r = requests.post(
            f'{BASE}/v2/inference/karlo/variations',
            json={
                'version': 'v2.1',
                'image': image,
                'height': 1024,
                'width': 1024
            },
            headers={
                'Authorization': f'KakaoAK {REST_API_KEY}',
                'Content-Type': 'application/json'
            }
        )
        # Convert the response to JSON
        response = json.loads(r.content)
        return response

    # Modify image
    def inpainting(image, mask):
        r = requests.post(
            f'{BASE}/v2/inference/karlo/inpainting',
            json={
                'image': image,
                'mask': mask
            },
            headers={
                'Authorization': f'KakaoAK {REST_API_KEY}',
                'Content-Type': 'application/json'
            }
        )
        # Convert the response to JSON
        response = json.loads(r.content)
        return response

    # Base64 encoding
    def imageToString(img):
        img_byte_arr = io.BytesIO()
        img.save(img_byte_arr, format='PNG')
        my_encoded_img = base64.encodebytes(img_byte_arr.getvalue()).decode('ascii')
        return my_encoded_img

    img = Image.open('original.png')
    response = variations(imageToString(img))
    result = Image.open(urllib.request.urlopen(response.get("images")[0].get("image")))
    assert result.size == (1024, 1024)

    img = Image.open('image.png')
    mask = Image.open('mask.png')
    response = inpainting(imageToString(img), imageToString(mask))
    result = Image.open(urllib.request.urlopen(response.get("images")[0].get("image")))
    assert result.size == (96, 64)
