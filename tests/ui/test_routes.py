"""The playground's files and JSON routes without a browser: the pages and their security headers,
the static files and nothing else, the key the config and stats routes require, and the numbers of
the status page (service/job_stats.py) on jobs written to the table."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pixelserve.app import client_lines
from pixelserve.db.models import Job
from pixelserve.http.ui import UI_DIR
from pixelserve.service.job_stats import percentile, recent_stats


def test_the_playground_is_served_at_the_root_with_a_strict_csp(app_client):
    r = app_client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert 'id="api-key"' in r.text and 'src="/ui/static/app.js"' in r.text
    assert "<script>" not in r.text and " style=" not in r.text  # nothing inline for the CSP to refuse


def test_ui_redirects_to_the_root_and_the_status_page_is_served(app_client):
    r = app_client.get("/ui", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/"
    r = app_client.get("/ui/status")
    assert r.status_code == 200 and 'src="/ui/static/status.js"' in r.text
    assert "unsafe-inline" not in r.headers["content-security-policy"]


def test_static_files_have_their_types_and_nothing_else_is_served(app_client):
    r = app_client.get("/ui/static/app.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert r.headers["content-security-policy"]
    assert app_client.get("/ui/static/style.css").headers["content-type"].startswith("text/css")
    for name in ("index.html", "..%2Fhttp%2Fui.py", "missing.js", "APP.JS"):
        assert app_client.get(f"/ui/static/{name}").status_code == 404, name
    assert app_client.get("/ui/static/../../pixelserve/app.py").status_code == 404


def test_every_ui_file_is_one_the_package_ships():
    # pyproject's package-data ships "ui/*": the folder stays flat.
    assert {p.name for p in UI_DIR.iterdir()} >= {"index.html", "status.html", "app.js", "api.js", "style.css"}
    assert all(p.is_file() for p in UI_DIR.iterdir())


def test_config_and_stats_need_a_key(app_client, api_key):
    for path in ("/v1/ui/config", "/v1/ui/stats"):
        r = app_client.get(path)
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized", path
        assert app_client.get(path, params={"api_key": api_key}).status_code == 401  # never from the URL
        assert app_client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_config_lists_the_models_with_their_families(app_client, api_key):
    r = app_client.get("/v1/ui/config", headers={"X-Api-Key": api_key})
    assert r.status_code == 200
    models = {m["id"]: m for m in r.json()["models"]}
    assert models["tiny-sd"]["family"] == "sd" and models["tiny-sdxl"]["family"] == "sdxl"
    assert models["tiny-sd"]["loaded"] is True and models["tiny-sd"]["demo"] is True
    assert r.json()["extra_sizes"] == []


def test_stats_show_the_engine_and_an_hour_of_minutes(app_client, api_key):
    r = app_client.get("/v1/ui/stats", headers={"Authorization": f"Bearer {api_key}"})
    assert r.status_code == 200
    body = r.json()
    assert body["engine"]["ready"] is True and body["engine"]["devices"] and body["engine"]["queue_depth"] >= 0
    assert len(body["last_hour"]["buckets"]) == 60 and body["last_hour"]["bucket_seconds"] == 60


def test_percentile_is_nearest_rank():
    assert percentile([], 50) is None
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10 and percentile(values, 95) == 19 and percentile([3.0], 95) == 3


def test_recent_stats_count_per_minute_and_time_the_succeeded(app_client):
    sessions = app_client.app.state.sessions
    now = datetime.now(timezone.utc) + timedelta(days=3650)  # a window of its own, after every other test's jobs
    since = now - timedelta(hours=1)

    def job(n, status, minute, seconds):
        end = since + timedelta(minutes=minute, seconds=30)
        return Job(id=f"stats-{n}", dialect="octoai", model="tiny-sd", status=status, request={},
                   created_at=end - timedelta(seconds=seconds), finished_at=end)

    with sessions() as s:
        s.add_all([job(1, "succeeded", 10, 2.0), job(2, "succeeded", 10, 4.0), job(3, "failed", 10, 1.0),
                   job(4, "succeeded", 59, 8.0), job(5, "cancelled", 59, 1.0),
                   job(6, "succeeded", -5, 1.0)])  # before the window
        s.commit()
    stats = recent_stats(sessions, now)
    assert stats["jobs"] == 5 and stats["outcomes"] == {"succeeded": 3, "failed": 1, "cancelled": 1}
    assert stats["p50"] == 4.0 and stats["p95"] == 8.0
    b = stats["buckets"]
    assert (b[10]["jobs"], b[10]["p50"], b[10]["p95"]) == (3, 2.0, 4.0)
    assert (b[59]["jobs"], b[59]["p50"]) == (2, 8.0)
    assert sum(x["jobs"] for x in b) == 5 and b[0]["p50"] is None


def test_serve_prints_the_playground_address(app_client):
    app = app_client.app
    app.state.listen_url, app.state.demo_key = "http://127.0.0.1:8000", "KEY123"
    try:
        lines = client_lines(app)
    finally:
        del app.state.listen_url, app.state.demo_key
    assert any("http://127.0.0.1:8000/ " in line and "KEY123" in line for line in lines)
    assert any(line.startswith("OctoAI") for line in lines)


def test_the_pages_and_their_json_are_not_in_the_api_schema(app_client):
    paths = app_client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith(("/ui", "/v1/ui"))]
