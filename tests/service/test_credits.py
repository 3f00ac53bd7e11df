"""The Studio credit ledger: spending order, refunds, idempotent settlement, lazy resets."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from pixelserve.db.crud.credits import CreditPolicy
from pixelserve.db.models_studio import CreditEntry
from pixelserve.db.session import open_database
from pixelserve.errors import PaymentRequired
from pixelserve.service.credits import CreditService


class Clock:
    def __init__(self, when: datetime):
        self.when = when

    def __call__(self) -> datetime:
        return self.when


@pytest.fixture
def credits(tmp_path):
    sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    clock = Clock(datetime(2026, 3, 31, 23, 0, tzinfo=timezone.utc))
    svc = CreditService(sessions, CreditPolicy(daily_amount=10, monthly_amount=20), image_cost={"sd": 1},
                        upscale_cost={"2x": 1}, clock=clock)
    return svc


def reserve(svc, owner, job, amount):
    with svc.sessions() as s:
        out = svc.reserve(s, owner, job, amount)
        s.commit()
        return out


def ledger_sums(svc, owner):
    with svc.sessions() as s:
        rows = s.scalars(select(CreditEntry).where(CreditEntry.owner_id == owner)).all()
        return (sum(r.default_delta for r in rows), sum(r.daily_delta for r in rows),
                sum(r.monthly_delta for r in rows)), [r.kind for r in rows]


def test_new_account_gets_the_period_amounts_as_reset_rows(credits):
    b = credits.balances(7)
    assert (b.default, b.daily, b.monthly) == (0, 10, 20)
    sums, kinds = ledger_sums(credits, 7)
    assert sums == (0, 10, 20) and kinds == ["reset", "reset"]


def test_spends_daily_then_monthly_then_default(credits):
    credits.grant(1, 5)
    b = reserve(credits, 1, "job-a", 8)
    assert (b.daily, b.monthly, b.default) == (2, 20, 5)
    b = reserve(credits, 1, "job-b", 24)  # 2 daily + 20 monthly + 2 default
    assert (b.daily, b.monthly, b.default) == (0, 0, 3)
    sums, _ = ledger_sums(credits, 1)
    assert sums == (3, 0, 0)  # the ledger adds up to the balances


def test_short_balance_is_402_with_balances_and_takes_nothing(credits):
    with pytest.raises(PaymentRequired) as e:
        reserve(credits, 1, "job-a", 31)
    assert e.value.detail == {"defaultCredit": 0, "dailyCredit": 10, "monthlyCredit": 20}
    b = credits.balances(1)
    assert (b.daily, b.monthly, b.default) == (10, 20, 0)
    _, kinds = ledger_sums(credits, 1)
    assert "reserve" not in kinds


def test_refund_goes_back_default_first_and_settling_twice_charges_once(credits):
    credits.grant(1, 5)
    reserve(credits, 1, "job-a", 33)  # 10 daily, 20 monthly, 3 default
    assert credits.settle_job("job-a", refund=4) is True  # default 3 back, then monthly 1
    b = credits.balances(1)
    assert (b.daily, b.monthly, b.default) == (0, 1, 5)
    assert credits.settle_job("job-a", refund=4) is False  # second settlement: nothing moves
    assert credits.settle_job("job-a", refund=33) is False
    b2 = credits.balances(1)
    assert (b2.daily, b2.monthly, b2.default) == (0, 1, 5)
    _, kinds = ledger_sums(credits, 1)
    assert kinds.count("settle") == 1 and kinds.count("refund") == 1


def test_refund_never_exceeds_the_reservation(credits):
    reserve(credits, 1, "job-a", 2)
    credits.settle_job("job-a", refund=50)
    b = credits.balances(1)
    assert (b.daily, b.monthly, b.default) == (10, 20, 0)


def test_settle_without_reservation_does_nothing(credits):
    assert credits.settle_job("never-reserved", refund=3) is False


def test_daily_and_monthly_resets_with_a_frozen_clock(credits):
    credits.grant(1, 5)
    reserve(credits, 1, "job-a", 15)  # 10 daily, 5 monthly
    b = credits.balances(1)
    assert (b.daily, b.monthly, b.default) == (0, 15, 5)
    credits.clock.when = datetime(2026, 3, 31, 23, 59, tzinfo=timezone.utc)  # same day: no reset
    assert credits.balances(1).daily == 0
    credits.clock.when = datetime(2026, 4, 1, 0, 1, tzinfo=timezone.utc)  # new day AND new month
    b = credits.balances(1)
    assert (b.daily, b.monthly, b.default) == (10, 20, 5)  # purchased credits never expire
    reserve(credits, 1, "job-b", 12)
    credits.clock.when = datetime(2026, 4, 2, 9, 0, tzinfo=timezone.utc)  # new day, same month
    b = credits.balances(1)
    assert (b.daily, b.monthly, b.default) == (10, 18, 5)
    sums, kinds = ledger_sums(credits, 1)
    assert sums == (5, 10, 18) and kinds.count("reset") == 5


def test_resets_follow_the_configured_time_zone(tmp_path):
    sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    clock = Clock(datetime(2026, 5, 1, 14, 0, tzinfo=timezone.utc))  # 23:00 in Seoul
    svc = CreditService(sessions, CreditPolicy(10, 0), image_cost={}, upscale_cost={}, tz="Asia/Seoul", clock=clock)
    reserve(svc, 1, "a", 10)
    clock.when = datetime(2026, 5, 1, 15, 30, tzinfo=timezone.utc)  # 00:30 the next day in Seoul
    assert svc.balances(1).daily == 10


def test_ledger_rows_are_written_with_the_record_or_not_at_all(credits):
    with credits.sessions() as s:
        credits.reserve(s, 1, "job-a", 3)
        s.rollback()  # the record it pays for failed to be written: no movement either
    with credits.sessions() as s:
        assert s.scalar(select(func.count()).select_from(CreditEntry).where(CreditEntry.kind == "reserve")) == 0
    assert credits.balances(1).daily == 10


def test_costs_from_settings(credits):
    credits.image_cost = {"sd": 1, "sd:16:9": 3}
    assert credits.cost_per_image("sd", "1:1") == 1
    assert credits.cost_per_image("sd", "16:9") == 3
    with pytest.raises(Exception):
        credits.cost_per_image("sdxl", "1:1")
    assert credits.cost_of_upscale("2x") == 1


def test_concurrent_reservations_never_overspend(credits):
    from concurrent.futures import ThreadPoolExecutor

    credits.balances(1)  # 30 credits: 10 daily + 20 monthly

    def attempt(i):
        try:
            reserve(credits, 1, f"job-{i}", 4)
            return True
        except PaymentRequired:
            return False

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(12)))
    assert results.count(True) == 7  # 7 x 4 = 28 <= 30 < 32
    b = credits.balances(1)
    assert b.total == 2
    sums, kinds = ledger_sums(credits, 1)
    assert sum(sums) == 2 and kinds.count("reserve") == 7


def test_concurrent_first_requests_open_one_account(credits):
    from concurrent.futures import ThreadPoolExecutor

    def attempt(i):
        try:
            reserve(credits, 99, f"first-{i}", 4)
            return True
        except PaymentRequired:
            return False

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(12)))
    assert results.count(True) == 7
    sums, kinds = ledger_sums(credits, 99)
    assert kinds.count("reset") == 2 and sum(sums) == 2 == credits.balances(99).total


@pytest.mark.parametrize("field, value", [
    ("studio_credit_timezone", "Mars/Olympus"), ("studio_image_cost", {"sd": -1}),
    ("studio_resolutions", {"sd": {"1:1": "63x64"}}), ("studio_resolutions", {"sd": {"1:1": "big"}}),
])
def test_bad_studio_settings_fail_at_start(tmp_path, field, value):
    from pydantic import ValidationError

    from pixelserve.settings import Settings

    with pytest.raises(ValidationError, match=field):
        Settings(data_dir=tmp_path, **{field: value})
