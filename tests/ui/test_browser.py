"""The playground and status page in a real browser: Playwright for Python driving Debian's
chromium (/usr/bin/chromium; .ci/run installs it) against a live server on the tiny models. One
server and one browser for the module. Screenshots go to tests/.artifacts/ (git-ignored, CI artefacts)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from pixelserve.app import create_app
from tests.api.octoai.assets import tiny_files, upload
from tests.conftest import make_settings
from tests.security.live import served

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts"

sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra's playwright is not installed")
pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} missing (apt install chromium)")

#: The colours of an <img>, read back through a canvas in the page.
PIXELS_JS = """img => { const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const x = c.getContext('2d'); x.drawImage(img, 0, 0); const d = x.getImageData(0, 0, c.width, c.height).data;
  const s = new Set(); for (let i = 0; i < d.length; i += 4) s.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  return {w: c.width, h: c.height, colours: s.size}; }"""
#: Every value #progress takes, and every preview image source, recorded from here on.
WATCH_JS = """() => { window.__progress = []; window.__previews = [];
  new MutationObserver(rs => rs.forEach(r => window.__progress.push(r.oldValue, r.target.getAttribute('value'))))
    .observe(document.getElementById('progress'), {attributes: true, attributeFilter: ['value'], attributeOldValue: true});
  new MutationObserver(rs => rs.forEach(r => window.__previews.push(r.target.getAttribute('src'))))
    .observe(document.getElementById('preview'), {attributes: true, attributeFilter: ['src']}); }"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_cache):
    app = create_app(make_settings(tmp_path_factory.mktemp("ui"), tiny_cache, octoai_extra_sizes="64x64"))
    with served(app, "browser") as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server, request):
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # Console errors (CSP refusals among them), less the 404s of the event stream asked for before
    # its job exists (the page retries until the generation request has created it).
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and "status of 404" not in m.text else None)
    pg.goto(server.base + "/")
    pg.fill("#api-key", server.key)
    pg.press("#api-key", "Enter")
    sync_api.expect(pg.locator("#key-state")).to_have_text("key saved in this browser")
    pg.select_option("#model", "tiny-sd")
    pg.select_option("#size", "64x64")
    pg.errors = errors
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    ctx.close()


def wait_until(check, timeout: float = 30) -> None:
    """Polls from here: the page's CSP refuses the string evaluation wait_for_function needs."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def api(server, timeout: float = 60) -> httpx.Client:
    """A client of the live server with its API key."""
    return httpx.Client(base_url=server.base, timeout=timeout, headers={"Authorization": f"Bearer {server.key}"})


def generate(page, prompt: str, steps: int = 12) -> None:
    page.fill("#prompt", prompt)
    page.fill("#steps", str(steps))
    page.click("#generate")


def test_generate_shows_progress_a_preview_and_an_image(page, server):
    page.evaluate(WATCH_JS)
    generate(page, "a lighthouse at dusk", steps=12)
    sync_api.expect(page.locator("#status")).to_contain_text("done", timeout=60_000)
    img = page.locator("#results img").first
    px = img.evaluate(PIXELS_JS)
    assert (px["w"], px["h"]) == (64, 64) and px["colours"] > 50  # not all one colour
    seen = {float(v) for v in page.evaluate("window.__progress") if v is not None}
    assert len({v for v in seen if 0 < v < 12}) >= 2 and 12 in seen  # it moved, step by step, to the end
    assert any(src.startswith("data:image/jpeg;base64,") for src in page.evaluate("window.__previews"))
    assert page.locator("#results figcaption").first.text_content().startswith("seed ")
    # The key stays in this browser: localStorage, never a URL (the page's own or any request's).
    assert page.evaluate("localStorage.getItem('pixelserve.apiKey')") == server.key
    assert server.key not in page.url
    assert not page.errors, page.errors


def test_the_key_never_goes_in_a_url(page, server):
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    generate(page, "a red cube", steps=3)
    sync_api.expect(page.locator("#status")).to_contain_text("done", timeout=60_000)
    page.click("#history-refresh")
    sync_api.expect(page.locator("#history .history-item").first).to_be_visible()
    assert any("/events" in u for u in urls) and any("/v1/jobs?" in u for u in urls)
    assert not [u for u in urls if server.key in u]


def test_cancel_a_long_job(page, server):
    generate(page, "a long job", steps=200)
    wait_until(lambda: float(page.locator("#progress").get_attribute("value") or 0) >= 2)  # running
    page.click("#cancel")
    sync_api.expect(page.locator("#status")).to_have_text("cancelled", timeout=30_000)
    assert page.locator("#results img").count() == 0
    sync_api.expect(page.locator("#generate")).to_be_enabled()
    with server.app.state.sessions() as s:
        from pixelserve.db.models import Job
        statuses = [j.status for j in s.query(Job).filter(Job.client_id.like("ui-%")).all()]
    assert "cancelled" in statuses


def test_a_queued_job_shows_its_place(page, server):
    with api(server, timeout=120) as client, ThreadPoolExecutor(2) as pool:
        ahead = ["ahead-running", "ahead-queued"]
        for job_id, state in zip(ahead, ("running", "queued")):
            pool.submit(client.post, "/generate/sd", headers={"X-Job-Id": job_id},
                        json={"prompt": "ahead", "width": 64, "height": 64, "steps": 200})
            # In the engine's queue (a position) or running, before the next one comes.
            wait_until(lambda: (r := client.get(f"/v1/jobs/{job_id}")).status_code == 200 and r.json()["status"] == state
                       and (state == "running" or r.json()["queue_position"] is not None))
        generate(page, "behind two", steps=3)
        sync_api.expect(page.locator("#status")).to_have_text("queued: 1 job(s) ahead")
        assert page.locator("#progress").get_attribute("value") is None  # indeterminate while it waits
        page.click("#cancel")
        sync_api.expect(page.locator("#status")).to_have_text("cancelled")
        for job_id in ahead:
            client.delete(f"/v1/jobs/{job_id}")


def test_an_xss_prompt_shows_as_text(page, server):
    payload = "<img src=x onerror=window.__xss=1><script>window.__xss=2</script><b>bold</b>"
    generate(page, payload, steps=2)
    sync_api.expect(page.locator("#status")).to_contain_text("done", timeout=60_000)
    page.locator("#results img").first.click()
    assert payload in page.locator("#details-text").text_content()
    assert payload in page.locator("#code").text_content()
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src=x]").count() == 0 and page.locator("#details-text b, #code b").count() == 0


def run_copied(page, server, tmp_path) -> Image.Image:
    page.select_option("#code-lang", "curl")
    code = page.locator("#code").text_content()
    assert server.key not in code  # the code reads the key from the environment
    env = {**os.environ, "PIXELSERVE_API_KEY": server.key}
    out = subprocess.run(["bash", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "out-0.png seed " in out.stdout
    return Image.open(tmp_path / "out-0.png")


def test_the_copied_curl_command_returns_an_image(page, server, tmp_path):
    page.fill("#prompt", "a copied request")
    page.fill("#steps", "3")
    page.fill("#seed", "1234")
    page.check("#seed-lock")
    img = run_copied(page, server, tmp_path)
    assert img.size == (64, 64)
    # The same request as the page's: the same seed draws the same image.
    page.click("#generate")
    sync_api.expect(page.locator("#status")).to_contain_text("done", timeout=60_000)
    src = page.locator("#results img").first.get_attribute("src")
    ours = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    assert np.array_equal(np.asarray(ours.convert("RGB")), np.asarray(img.convert("RGB")))
    assert page.locator("#results figcaption").first.text_content() == "seed 1234"


@pytest.mark.parametrize("lang", ["octoai-sdk", "karlo", "openai", "studio", "webuiapi"])
def test_the_other_copied_snippets_run(page, server, tmp_path, lang):
    page.fill("#prompt", "a copied request")
    page.fill("#steps", "3")
    page.fill("#seed", "99")
    page.select_option("#code-lang", lang)
    code = page.locator("#code").text_content()
    assert server.key not in code
    env = {**os.environ, "PIXELSERVE_API_KEY": server.key}
    cmd = ["bash", "-c", code] if lang == "studio" else [sys.executable, "-c", code]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr + out.stdout
    if lang == "studio":
        image = json.loads(out.stdout)["images"][0]
        assert image["generationStatus"] == "COMPLETED"
        assert Image.open(io.BytesIO(base64.b64decode(image["base64"]))).size == (512, 512)
    else:
        assert "out-0.png" in out.stdout
        assert Image.open(tmp_path / "out-0.png").size[0] >= 64


def test_draw_a_mask_and_inpaint(page, server):
    generate(page, "a field", steps=3)
    sync_api.expect(page.locator("#status")).to_contain_text("done", timeout=60_000)
    page.locator("#results button", has_text="Inpaint").first.click()
    canvas = page.locator("#mask-canvas")
    sync_api.expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    # A thick stroke across the left half, then the eraser takes back its top part.
    page.fill("#brush-size", "40")
    page.dispatch_event("#brush-size", "input")
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.9, steps=8)
    page.mouse.up()
    page.check("#tool-eraser")
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.2, steps=4)
    page.mouse.up()
    with page.expect_request(lambda r: "/generate/" in r.url and r.method == "POST") as req:
        page.click("#generate")
    body = json.loads(req.value.post_data)
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask_image"]))).convert("L"))
    assert mask.shape == (64, 64) and body["init_image"] and body["strength"] == 1
    assert mask[40, 16] == 255 and mask[40, 56] == 0  # painted left, untouched right
    assert mask[3, 16] == 0  # erased
    sync_api.expect(page.locator("#status")).to_contain_text("done", timeout=60_000)
    with page.expect_download() as download:  # the mask file the copied code reads
        page.click("#download-mask")
    assert download.value.suggested_filename == "mask.png"
    saved = np.asarray(Image.open(download.value.path()).convert("L"))
    assert np.array_equal(saved, mask)
    src = page.locator("#results img").first.get_attribute("src")
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"), dtype=np.int16)
    init = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["init_image"]))).convert("RGB"), dtype=np.int16)
    diff = np.abs(out - init).mean(axis=2)
    inside, outside = diff[mask == 255].mean(), diff[mask == 0].mean()
    assert inside > 5 * max(outside, 1)  # the painted area was redrawn, the rest kept


def test_a_lora_from_the_asset_library(page, server, tmp_path):
    lora = tiny_files(tmp_path)[("lora", "sd")].read_bytes()
    with httpx.Client(base_url=server.base, timeout=60) as client:
        upload(client, server.key, "watercolour", "lora", "sd", lora)
    page.click("#save-key")  # the form reads the library again
    box = page.get_by_label("watercolour", exact=True)
    box.check()
    page.get_by_label("watercolour weight").fill("0.5")
    page.fill("#prompt", "with a lora")
    page.fill("#steps", "3")
    with page.expect_request(lambda r: "/generate/" in r.url and r.method == "POST") as req:
        page.click("#generate")
    assert json.loads(req.value.post_data)["loras"] == {"watercolour": 0.5}
    sync_api.expect(page.locator("#status")).to_contain_text("done", timeout=60_000)
    page.select_option("#model", "tiny-sdxl")  # an SD 1.5 LoRA is not offered for SDXL
    sync_api.expect(page.locator("#loras")).to_have_text("none for this model family")


def test_history_pages_with_thumbnails(page, server):
    with api(server) as client:
        for i in range(13):  # more than a page (12)
            r = client.post("/generate/sd", json={"prompt": f"history {i}", "width": 64, "height": 64, "steps": 1})
            assert r.status_code == 200, r.text
    page.click("#history-refresh")
    items = page.locator("#history .history-item")
    sync_api.expect(items).to_have_count(12)
    sync_api.expect(page.locator("#history-more")).to_be_visible()
    page.click("#history-more")
    wait_until(lambda: items.count() > 12)
    thumb = items.first.locator("img")
    sync_api.expect(thumb).to_have_count(1)
    wait_until(lambda: thumb.evaluate("img => img.complete && img.naturalWidth") == 64)
    ids = items.evaluate_all("rows => rows.map(r => r.textContent)")
    assert len(ids) == len(set(ids))  # the next page, not the same one again


def test_the_status_page(page, server):
    # A job of its own: pytest-xdist does not promise this file's tests run in order on one server.
    with api(server) as client:
        r = client.post("/generate/sd", json={"prompt": "status", "width": 64, "height": 64, "steps": 1})
        assert r.status_code == 200, r.text
    page.goto(server.base + "/ui/status")
    sync_api.expect(page.locator("#status")).to_contain_text("updated")
    assert int(page.locator("#jobs-hour").text_content()) >= 1
    assert page.locator("#p95").text_content().endswith(" s")
    assert page.locator("#models tr").count() == 3 and "yes" in page.locator("#models").text_content()
    assert page.locator("#chart rect").count() >= 2  # the frame and at least one minute's bar
    assert page.locator("#chart circle").count() >= 2  # p50 and p95 of that minute
    assert not page.errors, page.errors
