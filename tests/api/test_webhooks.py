"""Signed webhooks from the outbox: every dialect, retries with the same webhook-id, refusals at
admission, the secret's routes and the CLI. One app for the module; receivers on 127.0.0.1
(PIXELSERVE_WEBHOOK_ALLOW_PRIVATE=true), retries' backoff shortened."""

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from typer.testing import CliRunner

from pixelserve.app import create_app
from pixelserve.cli import cli
from pixelserve.core.request import GenerationRequest
from pixelserve.db.crud import webhooks as crud
from pixelserve.db.crud.keys import create_key
from pixelserve.db.models import Job, UsageEvent, WebhookDelivery
from pixelserve.service import job_options, webhook_sender
from pixelserve.service.pipeline import DirectPolicy
from pixelserve.service.webhooks import target_policy
from tests.api.karlo.helpers import T2I
from tests.api.karlo.helpers import small as karlo_small
from tests.api.octoai.conftest import EXTRA_SIZES
from tests.api.octoai.helpers import small as octoai_small
from tests.api.studio.conftest import SMALL_SETTINGS
from tests.api.webhook_receiver import Receiver
from tests.conftest import make_settings, wait_ready

runner = CliRunner()
STUDIO = {"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 1}


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_cache):
    data = tmp_path_factory.mktemp("webhooks")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(webhook_sender, "BACKOFF_FIRST_S", 0.05)  # retries within a second, not 5 s, 10 s ...
        settings = make_settings(data, tiny_cache, octoai_extra_sizes=EXTRA_SIZES, webhook_allow_private=True,
                                 public_base_url="http://testserver", **SMALL_SETTINGS)
        app = create_app(settings)
        rx = Receiver()
        with TestClient(app) as client:
            wait_ready(client)
            with app.state.sessions() as s:
                info, key = create_key(s, "hooks", app.state.auth.secret)
            yield dict(client=client, app=app, rx=rx, key=key, key_id=info.id, data=data,
                       cli_env={"PIXELSERVE_DATA_DIR": str(data), "PIXELSERVE_WEBHOOK_ALLOW_PRIVATE": "true"})
        rx.close()


def secret_of(env) -> str:
    r = env["client"].get("/v1/webhooks/secret", headers={"Authorization": f"Bearer {env['key']}"})
    assert r.status_code == 200, r.text
    return r.json()["secret"]


def deliveries(env, path: str) -> list:
    with env["app"].state.sessions() as s:
        return [d for d in crud.listing(s, limit=1000) if d.url.endswith(path)]


def wait_status(env, path: str, status: str):
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = deliveries(env, path)
        if rows and rows[0].status == status:
            return rows[0]
        time.sleep(0.02)
    raise AssertionError(f"{path}: {deliveries(env, path)}")


def test_every_dialect_delivers_a_signed_webhook_whose_images_open(env):
    client, rx, key = env["client"], env["rx"], env["key"]
    secret = secret_of(env)
    assert secret.startswith("whsec_")
    for headers in ({"Authorization": f"KakaoAK {key}"}, {"X-Api-Key": key}):  # any dialect's way of sending it
        assert client.get("/v1/webhooks/secret", headers=headers).json()["secret"] == secret
    assert client.get("/v1/webhooks/secret").status_code == 401

    octo = client.post("/generate/sd", headers={"Authorization": f"Bearer {key}"},
                       json=octoai_small(webhook_url=rx.answer("/octo")))
    karlo = client.post(T2I, json={**karlo_small(), "return_type": "base64_string"},
                        headers={"Authorization": f"KakaoAK {key}", "X-Webhook-URL": rx.answer("/karlo"),
                                 "X-Job-Id": "my-render-1"})
    studio = client.post("/api/images/create", headers={"X-Api-Key": key},
                         json={**STUDIO, "webhook_url": rx.answer("/studio")})
    # A background (async) Studio job reports when the runner has run it.
    later = client.post("/api/images/create", headers={"X-Api-Key": key, "X-Webhook-URL": rx.answer("/async")},
                        json={**STUDIO, "async": True})
    for r in (octo, karlo, studio, later):
        assert r.status_code == 200, r.text
    for path, dialect, answer in (("/octo", "octoai", octo), ("/karlo", "karlo", karlo), ("/studio", "studio", studio),
                                  ("/async", "studio", later)):
        [got] = rx.wait_for(path)
        payload = Webhook(secret).verify(got.body, got.headers)  # as a receiver checks it
        assert payload["type"] == "job.finished" and payload["status"] == "succeeded"
        assert payload["dialect"] == dialect and payload["job_id"] == answer.headers["X-Job-Id"]
        assert payload["error"] is None and "run" in payload["timings"]
        [image] = payload["images"]
        assert isinstance(image["seed"], int)
        fetched = client.get(image["url"])
        assert fetched.status_code == 200 and fetched.headers["content-type"].startswith("image/")
        assert got.headers["content-type"] == "application/json"
        assert got.headers["webhook-id"].startswith("msg_") and got.headers["webhook-timestamp"].isdigit()
        row = wait_status(env, path, "delivered")
        assert row.attempts == 1 and row.id == got.headers["webhook-id"] and row.payload == got.body.decode()
    assert json.loads(rx.at("/karlo")[0].body)["job_id"] == "my-render-1"  # the id the caller knows
    with pytest.raises(WebhookVerificationError):  # another secret does not verify it
        Webhook(crud.new_secret()).verify(rx.at("/octo")[0].body, rx.at("/octo")[0].headers)


def delivery_counts(env) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    families = text_string_to_metric_families(env["client"].get("/metrics").text)
    return {s.labels["outcome"]: s.value for f in families if f.name == "pixelserve_webhook_deliveries"
            for s in f.samples if s.name.endswith("_total")}


def test_a_receiver_failing_twice_gets_the_third_attempt_with_the_same_id(env):
    client, rx, key = env["client"], env["rx"], env["key"]
    before = delivery_counts(env)
    r = client.post("/generate/sd", headers={"Authorization": f"Bearer {key}",
                                             "X-Webhook-URL": rx.answer("/flaky", 500, 500, 200)}, json=octoai_small())
    assert r.status_code == 200, r.text
    got = rx.wait_for("/flaky", 3)
    assert len({g.headers["webhook-id"] for g in got}) == 1 and len({g.body for g in got}) == 1
    secret = secret_of(env)
    assert all(Webhook(secret).verify(g.body, g.headers)["job_id"] == r.headers["X-Job-Id"] for g in got)
    row = wait_status(env, "/flaky", "delivered")
    assert row.attempts == 3 and row.last_status_code == 200
    after = delivery_counts(env)  # /metrics counted each attempt
    assert after["retrying"] - before["retrying"] >= 2 and after["delivered"] - before["delivered"] >= 1


def test_429_waits_out_retry_after(env):
    client, rx, key = env["client"], env["rx"], env["key"]
    url = rx.answer("/busy", 429, 200, headers={"Retry-After": "1"})
    assert client.post("/generate/sd", headers={"Authorization": f"Bearer {key}", "X-Webhook-URL": url},
                       json=octoai_small()).status_code == 200
    first, second = rx.wait_for("/busy", 2)
    assert wait_status(env, "/busy", "delivered").attempts == 2
    # No sooner than Retry-After asked (the backoff alone is 0.05 s here): a lower bound, never flaky.
    assert second.at - first.at >= 1.0


def test_a_4xx_fails_at_once_and_the_cli_lists_and_retries_it(env):
    client, rx, key = env["client"], env["rx"], env["key"]
    url = rx.answer("/gone", 410)
    assert client.post("/generate/sd", headers={"Authorization": f"Bearer {key}", "X-Webhook-URL": url},
                       json=octoai_small()).status_code == 200
    row = wait_status(env, "/gone", "failed")
    assert row.attempts == 1 and row.last_status_code == 410 and len(rx.at("/gone")) == 1
    listed = runner.invoke(cli, ["webhooks", "list", "--status", "failed"], env=env["cli_env"])
    assert listed.exit_code == 0 and row.id in listed.stdout and "HTTP 410" in listed.stdout
    retried = runner.invoke(cli, ["webhooks", "retry", row.id], env=env["cli_env"])
    assert retried.exit_code == 0, retried.output
    again = rx.wait_for("/gone", 2)
    assert again[1].headers["webhook-id"] == row.id and again[1].body == again[0].body
    assert wait_status(env, "/gone", "failed").attempts == 2
    assert runner.invoke(cli, ["webhooks", "retry", "msg_nope"], env=env["cli_env"]).exit_code == 1


def test_a_failed_job_reports_its_error_once(env):
    client, rx, app = env["client"], env["rx"], env["app"]
    svc, url = app.state.service, rx.answer("/failed")

    async def admit_and_fail(times: int) -> str:
        token = job_options.set_current(job_options.JobOptions(webhook_url=url))
        try:
            valid = svc.validate(GenerationRequest(model="tiny-sd", prompt="x", width=64, height=64, steps=2))
            job = await svc.admit(valid, dialect="octoai", caller_id=env["key_id"], policy=DirectPolicy())
        finally:
            job_options.reset(token)
        for _ in range(times):  # a job ends once: the second end writes no second webhook
            await svc.fail(job, "boom")
        return job.id

    job_id = client.portal.call(admit_and_fail, 2)
    [got] = rx.wait_for("/failed")
    payload = Webhook(secret_of(env)).verify(got.body, got.headers)
    assert payload == {"type": "job.failed", "job_id": job_id, "status": "failed", "dialect": "octoai",
                       "model": "tiny-sd", "images": [], "error": "boom", "timings": None}
    wait_status(env, "/failed", "delivered")
    assert len(deliveries(env, "/failed")) == 1


def counts(env) -> tuple[int, int, int]:
    with env["app"].state.sessions() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) for t in (Job, UsageEvent, WebhookDelivery))


def test_refused_targets_are_a_4xx_at_admission_and_nothing_is_written(env, monkeypatch):
    client, key, rx = env["client"], env["key"], env["rx"]
    before = counts(env)
    octo = {"Authorization": f"Bearer {key}"}
    # Whatever the allow setting says: not http(s), no host, cloud metadata.
    for bad in ("ftp://example.com/hook", "http:///nohost", "http://169.254.169.254/latest"):
        r = client.post("/generate/sd", headers={**octo, "X-Webhook-URL": bad}, json=octoai_small())
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["header", "X-Webhook-URL"], r.text
    monkeypatch.setattr(env["app"].state.webhooks, "policy", target_policy(allow_private=False))  # the default
    private = rx.answer("/never")
    r = client.post("/generate/sd", headers=octo, json=octoai_small(webhook_url=private))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "webhook_url"], r.text
    assert "not a public address" in r.json()["detail"][0]["msg"]
    r = client.post(T2I, headers={"Authorization": f"KakaoAK {key}", "X-Webhook-URL": private}, json=karlo_small())
    assert r.status_code == 400 and r.json()["code"] == -2 and "X-Webhook-URL" in r.json()["msg"], r.text
    r = client.post("/api/images/create", headers={"X-Api-Key": key}, json={**STUDIO, "webhook_url": private})
    assert r.status_code == 400 and "webhook_url" in r.json()["message"], r.text
    assert counts(env) == before and rx.at("/never") == []


def test_cli_sets_a_keys_default_target_and_shows_and_rotates_its_secret(env):
    client, rx, key, key_id, cli_env = env["client"], env["rx"], env["key"], env["key_id"], env["cli_env"]
    url = rx.answer("/default")
    r = runner.invoke(cli, ["keys", "webhook", str(key_id), url], env=cli_env)
    assert r.exit_code == 0, r.output
    shown = runner.invoke(cli, ["keys", "webhook-secret", str(key_id)], env=cli_env).stdout.strip()
    assert shown == secret_of(env)
    assert client.get("/v1/webhooks/secret", headers={"X-Api-Key": key}).json()["webhook_url"] == url
    # A request naming no URL reports to the key's default.
    assert client.post("/generate/sd", headers={"Authorization": f"Bearer {key}"}, json=octoai_small()).status_code == 200
    [got] = rx.wait_for("/default")
    assert Webhook(shown).verify(got.body, got.headers)["type"] == "job.finished"

    rotated = runner.invoke(cli, ["keys", "webhook-secret", str(key_id), "--rotate"], env=cli_env).stdout.strip()
    assert rotated.startswith("whsec_") and rotated != shown and secret_of(env) == rotated
    by_api = client.post("/v1/webhooks/secret/rotate", headers={"Authorization": f"Bearer {key}"})
    assert by_api.status_code == 200 and by_api.json()["secret"] not in (shown, rotated)
    assert secret_of(env) == by_api.json()["secret"]

    assert runner.invoke(cli, ["keys", "webhook", str(key_id), ""], env=cli_env).exit_code == 0  # cleared
    assert client.get("/v1/webhooks/secret", headers={"X-Api-Key": key}).json()["webhook_url"] is None
    refused = runner.invoke(cli, ["keys", "webhook", str(key_id), url], env={**cli_env,
                                                                              "PIXELSERVE_WEBHOOK_ALLOW_PRIVATE": "false"})
    assert refused.exit_code == 2 and "not a public address" in refused.output
    assert runner.invoke(cli, ["keys", "webhook", "999", url], env=cli_env).exit_code == 1
    assert runner.invoke(cli, ["keys", "webhook-secret", "999"], env=cli_env).exit_code == 1
