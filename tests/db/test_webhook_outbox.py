"""The outbox's claim: two replicas looking at the same due row, only one sends the attempt; an
attempt whose claim lapsed and was taken again cannot overwrite the newer one's outcome."""

from datetime import timedelta

from sqlalchemy import update

from pixelserve.db.crud import webhooks as crud
from pixelserve.db.models import WebhookDelivery, utcnow
from pixelserve.db.session import open_database


def test_a_due_row_is_claimed_once_and_a_lapsed_claim_cannot_record(tmp_path):
    sessions = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with sessions() as s:
        crud.add(s, "msg_1", job_id="j1", api_key_id=None, url="http://x/", event_type="job.finished", payload="{}")
        s.commit()
        assert crud.due(s, 10) == ["msg_1"]
        first = crud.claim(s, "msg_1", hold_s=30)
        assert first is not None and first.attempts == 1
        assert crud.claim(s, "msg_1", hold_s=30) is None  # the other replica: not due any more
        assert crud.due(s, 10) == []
        # The first sender stalls past its hold; another takes the row up again.
        s.execute(update(WebhookDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        s.commit()
        second = crud.claim(s, "msg_1", hold_s=30)
        assert second is not None and second.attempts == 2
        assert not crud.record(s, first, status="failed", status_code=410, error="HTTP 410")  # stale: ignored
        assert crud.record(s, second, status="delivered", status_code=204, error=None)
        row = crud.get(s, "msg_1")
        assert (row.status, row.attempts, row.last_status_code) == ("delivered", 2, 204) and row.delivered_at
    sessions.kw["bind"].dispose()
