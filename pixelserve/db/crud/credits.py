"""The Studio credit ledger: three balances per owner, every movement one ledger row.

Nothing here commits: each function works inside the caller's transaction so that a movement
and the record it pays for (job, image) are written together or not at all.

- Spending order: daily, then monthly, then default (the purchased, never-expiring credits last).
- A refund gives back to the buckets in the reverse order (default first), never more than the
  reservation took from each bucket.
- A job has at most one reserve, one refund and one settle row (unique job_id + kind), so
  settling twice changes nothing the second time.
- Resets are lazy: the first read in a new day (month) sets the daily (monthly) balance to the
  configured amount; unused credits of the old period expire. A ``reset`` row records the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pixelserve.db.models_studio import CreditAccount, CreditEntry

BUCKETS = ("daily", "monthly", "default")  # spending order


@dataclass(frozen=True)
class CreditPolicy:
    daily_amount: int = 0
    monthly_amount: int = 0
    initial_default: int = 0  # granted once when an owner's account is first opened


@dataclass(frozen=True)
class Balances:
    default: int
    daily: int
    monthly: int

    @property
    def total(self) -> int:
        return self.default + self.daily + self.monthly

    def to_wire(self) -> dict:
        return {"defaultCredit": self.default, "dailyCredit": self.daily, "monthlyCredit": self.monthly}


class InsufficientCredits(Exception):
    def __init__(self, needed: int, balances: Balances):
        super().__init__(f"needs {needed} credits, has {balances.total}")
        self.needed = needed
        self.balances = balances


def _balances(acc: CreditAccount) -> Balances:
    return Balances(acc.default_credit, acc.daily_credit, acc.monthly_credit)


def _entry(session: Session, owner_id: int, kind: str, now: datetime, deltas: dict[str, int],
           job_id: str | None = None, note: str | None = None) -> None:
    session.add(CreditEntry(owner_id=owner_id, kind=kind, job_id=job_id, note=note, created_at=now,
                            default_delta=deltas.get("default", 0), daily_delta=deltas.get("daily", 0),
                            monthly_delta=deltas.get("monthly", 0)))


def _apply(acc: CreditAccount, deltas: dict[str, int]) -> None:
    for bucket, delta in deltas.items():
        setattr(acc, f"{bucket}_credit", getattr(acc, f"{bucket}_credit") + delta)


def account(session: Session, owner_id: int, policy: CreditPolicy, now: datetime) -> CreditAccount:
    """The owner's account, opened on first use, locked for this transaction, resets applied."""
    # Take the row's write lock before reading (SQLite: the UPDATE starts the write transaction;
    # PostgreSQL: a row lock), so two requests never both spend the same credits.
    session.execute(update(CreditAccount).where(CreditAccount.owner_id == owner_id)
                    .values(owner_id=CreditAccount.owner_id))
    acc = session.scalars(select(CreditAccount).where(CreditAccount.owner_id == owner_id)
                          .execution_options(populate_existing=True)).first()
    if acc is None:
        acc = CreditAccount(owner_id=owner_id, default_credit=0, daily_credit=0, monthly_credit=0,
                            daily_period="", monthly_period="")
        try:
            with session.begin_nested():  # two first requests of one owner: one opens the account
                session.add(acc)
        except IntegrityError:
            return account(session, owner_id, policy, now)  # the other one did: lock and read it
        if policy.initial_default:
            _apply(acc, {"default": policy.initial_default})
            _entry(session, owner_id, "grant", now, {"default": policy.initial_default}, note="initial credits")
    day, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
    if acc.daily_period != day:
        delta = policy.daily_amount - acc.daily_credit
        acc.daily_credit, acc.daily_period = policy.daily_amount, day
        _entry(session, owner_id, "reset", now, {"daily": delta}, note=f"daily reset for {day}")
    if acc.monthly_period != month:
        delta = policy.monthly_amount - acc.monthly_credit
        acc.monthly_credit, acc.monthly_period = policy.monthly_amount, month
        _entry(session, owner_id, "reset", now, {"monthly": delta}, note=f"monthly reset for {month}")
    return acc


def balances(session: Session, owner_id: int, policy: CreditPolicy, now: datetime) -> Balances:
    return _balances(account(session, owner_id, policy, now))


def reserve(session: Session, owner_id: int, job_id: str, amount: int, policy: CreditPolicy,
            now: datetime) -> Balances:
    """Take ``amount`` (daily, then monthly, then default); raises InsufficientCredits, taking nothing."""
    acc = account(session, owner_id, policy, now)
    if amount > _balances(acc).total:
        raise InsufficientCredits(amount, _balances(acc))
    left, deltas = amount, {}
    for bucket in BUCKETS:
        take = min(left, getattr(acc, f"{bucket}_credit"))
        if take:
            deltas[bucket] = -take
            left -= take
    _apply(acc, deltas)
    _entry(session, owner_id, "reserve", now, deltas, job_id=job_id, note=f"{amount} credits reserved")
    return _balances(acc)


def _row(session: Session, job_id: str, kind: str) -> CreditEntry | None:
    return session.scalars(select(CreditEntry).where(CreditEntry.job_id == job_id, CreditEntry.kind == kind)).first()


def is_settled(session: Session, job_id: str) -> bool:
    return _row(session, job_id, "settle") is not None


def settle(session: Session, job_id: str, refund_amount: int, policy: CreditPolicy, now: datetime,
           note: str | None = None) -> bool:
    """Close the job's reservation, giving back ``refund_amount`` (failed images).

    Returns False, changing nothing, when the job was settled before (or never reserved).
    """
    reserved = _row(session, job_id, "reserve")
    if reserved is None:
        return False
    # The account's lock first, then the check: two replicas settling one job at once (a job taken
    # over after its lease lapsed) queue on the lock, and the second sees the first one's row.
    acc = account(session, reserved.owner_id, policy, now)
    if is_settled(session, job_id):
        return False
    taken = {"daily": -reserved.daily_delta, "monthly": -reserved.monthly_delta, "default": -reserved.default_delta}
    refund_amount = min(refund_amount, sum(taken.values()))
    if refund_amount > 0:
        left, deltas = refund_amount, {}
        for bucket in reversed(BUCKETS):
            give = min(left, taken[bucket])
            if give:
                deltas[bucket] = give
                left -= give
        _apply(acc, deltas)
        _entry(session, reserved.owner_id, "refund", now, deltas, job_id=job_id,
               note=f"{refund_amount} credits refunded")
    _entry(session, reserved.owner_id, "settle", now, {}, job_id=job_id,
           note=note or f"{sum(taken.values()) - max(refund_amount, 0)} credits charged")
    return True


def grant(session: Session, owner_id: int, amount: int, policy: CreditPolicy, now: datetime,
          bucket: str = "default", note: str | None = None) -> Balances:
    """Add (or, negative, remove) credits. ValueError, with nothing written, for 0 (a ledger row that
    moves nothing) or for removing more than the bucket holds (a balance never goes below zero)."""
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {BUCKETS}")
    if amount == 0:
        raise ValueError("the amount must not be 0")
    acc = account(session, owner_id, policy, now)
    balance = getattr(acc, f"{bucket}_credit")
    if amount < 0 and -amount > balance:
        raise ValueError(f"cannot remove {-amount} {bucket} credits: the balance is {balance}")
    _apply(acc, {bucket: amount})
    _entry(session, owner_id, "grant", now, {bucket: amount}, note=note)
    return _balances(acc)


def entries(session: Session, owner_id: int, limit: int = 100) -> list[CreditEntry]:
    return list(session.scalars(select(CreditEntry).where(CreditEntry.owner_id == owner_id)
                                .order_by(CreditEntry.id.desc()).limit(limit)))
