"""Studio credits: prices from settings, a clock that tests can freeze, the ledger in db/crud/credits.py.

The functions taking a ``session`` run inside the caller's transaction (the job or image record
they pay for is written in the same one); the others open and commit their own.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from pixelserve.db.crud import credits as ledger
from pixelserve.db.crud.credits import Balances, CreditPolicy, InsufficientCredits
from pixelserve.errors import InvalidRequest, PaymentRequired


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class CreditService:
    def __init__(self, sessions: sessionmaker[Session], policy: CreditPolicy, *,
                 image_cost: dict[str, int], upscale_cost: dict[str, int], tz: str = "UTC",
                 clock: Callable[[], datetime] = utc_now):
        self.sessions = sessions
        self.policy = policy
        self.image_cost = image_cost
        self.upscale_cost = upscale_cost
        self.tz = ZoneInfo(tz)  # an unknown zone fails at start
        self.clock = clock  # replace with a frozen clock in tests

    @classmethod
    def from_settings(cls, sessions: sessionmaker[Session], settings) -> "CreditService":
        policy = CreditPolicy(settings.studio_daily_credit, settings.studio_monthly_credit,
                              settings.studio_initial_credit)
        return cls(sessions, policy, image_cost=settings.studio_image_cost,
                   upscale_cost=settings.studio_upscale_cost, tz=settings.studio_credit_timezone)

    def now(self) -> datetime:
        """The clock's time in the reset time zone (days and months begin at its midnight)."""
        return self.clock().astimezone(self.tz)

    # -- prices ------------------------------------------------------------------------------
    def cost_per_image(self, family: str, ratio: str) -> int:
        cost = self.image_cost.get(f"{family}:{ratio}", self.image_cost.get(family))
        if cost is None:
            raise InvalidRequest(f"no credit cost configured for the {family} family", field="ratio")
        return cost

    def cost_of_upscale(self, scale: str) -> int:
        if scale not in self.upscale_cost:
            raise InvalidRequest(f"must be one of {', '.join(self.upscale_cost)}", field="scaleSize")
        return self.upscale_cost[scale]

    # -- inside the caller's transaction -------------------------------------------------------
    def reserve(self, session: Session, owner_id: int, job_id: str, amount: int) -> Balances:
        """Raises PaymentRequired (with the balances) when short; nothing is taken then."""
        try:
            return ledger.reserve(session, owner_id, job_id, amount, self.policy, self.now())
        except InsufficientCredits as e:
            raise PaymentRequired(f"not enough credits: this request costs {e.needed}, "
                                  f"the balance is {e.balances.total}", detail=e.balances.to_wire()) from None

    def settle(self, session: Session, job_id: str, refund: int) -> bool:
        return ledger.settle(session, job_id, refund, self.policy, self.now())

    def balances_in(self, session: Session, owner_id: int) -> Balances:
        return ledger.balances(session, owner_id, self.policy, self.now())

    # -- own transactions ----------------------------------------------------------------------
    def balances(self, owner_id: int) -> Balances:
        with self.sessions() as session:
            out = self.balances_in(session, owner_id)
            session.commit()  # a lazy reset is a ledger movement too
            return out

    def grant(self, owner_id: int, amount: int, bucket: str = "default", note: str | None = None) -> Balances:
        with self.sessions() as session:
            out = ledger.grant(session, owner_id, amount, self.policy, self.now(), bucket, note)
            session.commit()
            return out

    def settle_job(self, job_id: str, refund: int) -> bool:
        with self.sessions() as session:
            done = self.settle(session, job_id, refund)
            session.commit()
            return done
