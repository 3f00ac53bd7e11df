"""Closing the database at shutdown leaves SQLite's file complete (no WAL), even when a worker
thread still holds a connection at that moment (a cancelled request settling its job)."""

import asyncio
import threading
import time

from sqlalchemy import text

from pixelserve.db.session import close_database, close_database_at_exit, open_database


def _wal(tmp_path):
    wal = tmp_path / "p.db-wal"
    return wal.stat().st_size if wal.exists() else 0


def _late_writer(sessions, hold_s):
    """A connection checked out now, written to, and returned ``hold_s`` later (from another thread)."""
    session = sessions()
    session.execute(text("insert into late_writes values (1)"))
    session.commit()
    checked_out = threading.Event()

    def run():
        session.execute(text("select 1"))
        checked_out.set()
        time.sleep(hold_s)
        session.execute(text("insert into late_writes values (2)"))
        session.commit()
        session.close()

    t = threading.Thread(target=run)
    t.start()
    checked_out.wait(5)
    return t


def _open(tmp_path):
    sessions = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    with sessions() as s:
        s.execute(text("create table late_writes (x integer)"))
        s.commit()
    return sessions


def test_close_waits_for_a_connection_still_out_then_the_wal_is_gone(tmp_path):
    sessions = _open(tmp_path)
    t = _late_writer(sessions, hold_s=0.3)
    assert sessions.kw["bind"].pool.checkedout() == 1
    asyncio.run(close_database(sessions))
    t.join()
    assert _wal(tmp_path) == 0
    with open_database(f"sqlite:///{tmp_path / 'p.db'}")() as s:  # both writes are in the file
        assert s.execute(text("select count(*) from late_writes")).scalar() == 2


def test_a_connection_returned_after_the_wait_is_closed_at_exit(tmp_path):
    sessions = _open(tmp_path)
    t = _late_writer(sessions, hold_s=0.5)
    asyncio.run(close_database(sessions, wait_s=0.05))  # gives up waiting: the connection is still out
    t.join()
    assert _wal(tmp_path) > 0  # back in the discarded pool, still open
    close_database_at_exit(sessions)
    assert _wal(tmp_path) == 0
