"""The credit ledger through the API: spending order, 402, per-image refunds, resets on a frozen clock.

A fake engine keeps these fast. The balances come from settings (daily 3, monthly 4, 2 purchased
credits for a new account) so every bucket is in play; an sd image costs 1.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pixelserve.app import create_app
from pixelserve.db.models_studio import CreditEntry, StudioImage
from pixelserve.errors import EngineFailure
from tests.api.studio.conftest import SMALL_SETTINGS, new_key
from tests.api.studio.helpers import CREATE, balances
from tests.api.studio.test_jobs import NsfwEngine, job_of, ledger
from tests.conftest import make_settings
from tests.service.test_credits import Clock

CREDITS = dict(studio_daily_credit=3, studio_monthly_credit=4, studio_initial_credit=2, studio_nsfw_check=False)
BODY = {"prompt": "a cat", "styleId": 1, "ratio": "1:1"}


class ShortEngine(NsfwEngine):
    """Draws ``drop`` images fewer than asked for; every upscale fails."""

    drop = 0

    async def submit(self, job_id, request, on_progress=None):
        result = await super().submit(job_id, request, on_progress)
        keep = len(result.images) - self.drop
        result.images, result.seeds = result.images[:keep], result.seeds[:keep]
        return result

    async def postprocess(self, job_id, request, image):
        raise EngineFailure("upscaler crashed")


@pytest.fixture
def client(tmp_path, tiny_cache):
    engine = ShortEngine()
    app = create_app(make_settings(tmp_path, tiny_cache, **{**SMALL_SETTINGS, **CREDITS}), engine=engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.engine = engine
        app.state.studio.credits.clock = Clock(datetime(2026, 1, 31, 22, 0, tzinfo=timezone.utc))
        client.owner, key = new_key(app)
        client.headers.update({"X-Api-Key": key})
        yield client


def wire(default: int, daily: int, monthly: int) -> dict:
    return {"defaultCredit": default, "dailyCredit": daily, "monthlyCredit": monthly}


def rows(client, kind: str) -> list[tuple[int, int, int]]:
    """(daily, monthly, default) deltas of the caller's ledger rows of one kind, oldest first."""
    with client.app.state.sessions() as s:
        return [(e.daily_delta, e.monthly_delta, e.default_delta) for e in s.scalars(
            select(CreditEntry).where(CreditEntry.owner_id == client.owner, CreditEntry.kind == kind)
            .order_by(CreditEntry.id))]


def assert_ledger_adds_up(client) -> None:
    now = balances(client, {})
    with client.app.state.sessions() as s:
        entries = s.scalars(select(CreditEntry).where(CreditEntry.owner_id == client.owner)).all()
    assert wire(sum(e.default_delta for e in entries), sum(e.daily_delta for e in entries),
                sum(e.monthly_delta for e in entries)) == now


def image_count(client) -> int:
    with client.app.state.sessions() as s:
        return s.scalar(select(func.count()).select_from(StudioImage))


def test_spends_daily_then_monthly_then_default_then_402(client):
    assert balances(client, {}) == wire(2, 3, 4)
    steps = [(2, (-2, 0, 0), wire(2, 1, 4)),  # daily only
             (4, (-1, -3, 0), wire(2, 0, 1)),  # the last daily credit, then monthly
             (2, (0, -1, -1), wire(1, 0, 0))]  # the last monthly credit, then the purchased ones
    for sample, taken, left in steps:
        r = client.post(CREATE, json={**BODY, "sample": sample})
        assert r.status_code == 200, r.text
        assert len(r.json()["images"]) == sample and {k: r.json()[k] for k in left} == left
        assert rows(client, "reserve")[-1] == taken
    images = image_count(client)
    r = client.post(CREATE, json={**BODY, "sample": 2})
    assert r.status_code == 402, r.text
    assert r.json() == {"statusCode": 402, "message": r.json()["message"], "error": "Payment Required", **wire(1, 0, 0)}
    assert image_count(client) == images and len(rows(client, "reserve")) == 3  # nothing generated or reserved
    assert_ledger_adds_up(client)


def test_failed_images_are_refunded_one_by_one_purchased_credits_first(client):
    client.engine.drop = 1
    r = client.post(CREATE, json={**BODY, "sample": 4})  # 3 daily + 1 monthly reserved; 3 drawn
    assert r.status_code == 200, r.text
    images = r.json()["images"]
    assert [im["generationStatus"] for im in images] == ["COMPLETED"] * 3 + ["FAILED"]
    assert images[3]["generationError"] and images[3]["base64"] is None
    assert {k: r.json()[k] for k in wire(0, 0, 0)} == wire(2, 0, 4)
    assert rows(client, "refund") == [(0, 1, 0)]  # back to the bucket spent last
    assert ledger(client.app, job_of(client.app, images[0]["imageId"]).id) == ["reserve", "refund", "settle"]
    assert_ledger_adds_up(client)


def test_a_failed_upscale_is_refunded(client):
    parent = client.post(CREATE, json={**BODY, "sample": 1}).json()["images"][0]
    before = balances(client, {})
    r = client.post(f"/api/images/{parent['imageId']}/upscale", json={"scaleSize": "4x"})  # costs 2
    assert r.status_code == 500 and r.json()["statusCode"] == 500 and "upscaler crashed" in r.json()["message"]
    assert balances(client, {}) == before
    [up] = client.get(f"/api/images/{parent['imageId']}").json()["images"][0]["Upscaled"]
    assert up["generationStatus"] == "FAILED" and up["scaleSize"] == ["4x"]
    assert rows(client, "refund") == [(2, 0, 0)]
    assert_ledger_adds_up(client)


def test_daily_and_monthly_resets_on_a_frozen_clock(client):
    clock = client.app.state.studio.credits.clock
    client.post(CREATE, json={**BODY, "sample": 4})  # 3 daily + 1 monthly
    assert balances(client, {}) == wire(2, 0, 3)
    clock.when = datetime(2026, 1, 31, 23, 59, 59, tzinfo=timezone.utc)  # the same day: nothing comes back
    assert balances(client, {}) == wire(2, 0, 3)
    clock.when = datetime(2026, 2, 1, 0, 0, 1, tzinfo=timezone.utc)  # a new day and a new month
    r = client.post(CREATE, json={**BODY, "sample": 1})  # the create sees the reset before it reserves
    assert r.status_code == 200 and {k: r.json()[k] for k in wire(0, 0, 0)} == wire(2, 2, 4)
    clock.when = datetime(2026, 2, 2, 8, 0, tzinfo=timezone.utc)  # a new day of the same month
    assert balances(client, {}) == wire(2, 3, 4)  # purchased credits never expire
    assert rows(client, "reset") == [(3, 0, 0), (0, 4, 0), (3, 0, 0), (0, 1, 0), (1, 0, 0)]
    assert_ledger_adds_up(client)
