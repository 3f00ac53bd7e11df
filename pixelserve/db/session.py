"""Engine/session factory and schema migration (Alembic, run at start)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from pixelserve.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"

#: SQLite's primary result codes for a database that is there but cannot be used now (busy, locked,
#: out of memory, read-only, I/O error, full, cannot be opened); its other OperationalErrors (no
#: such table, a syntax error) are bugs and stay errors.
_SQLITE_UNAVAILABLE = {5, 6, 7, 8, 10, 13, 14}


def _unavailable(ctx) -> DatabaseUnavailable | None:
    """Every statement and connect on the engine passes here when it fails: a database that went away
    (a lost or refused connection, a read-only or full SQLite file) becomes DatabaseUnavailable, a 503
    with Retry-After in every dialect, wherever it was used. The pool still drops a dead connection
    first; a pre-ping's failure is left to the pool, which reconnects."""
    if ctx.is_pre_ping:
        return None
    orig = ctx.original_exception
    dbapi = ctx.dialect.loaded_dbapi
    if ctx.dialect.name == "sqlite":
        gone = (isinstance(orig, dbapi.OperationalError)
                and (getattr(orig, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_UNAVAILABLE)
    else:
        gone = ctx.is_disconnect or isinstance(orig, (dbapi.OperationalError, dbapi.InterfaceError))
    if not gone:
        return None
    # The driver's words name hosts and files: the log gets them, the client does not.
    log.warning("database unavailable: %s: %s", type(orig).__name__, str(orig).strip())
    return DatabaseUnavailable("the database is unavailable; retry later")


def _watch(engine: Engine) -> Engine:
    event.listen(engine, "handle_error", _unavailable)
    return engine


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: commits survive a crash of the process (what job records and the credit
            # ledger need); only an OS crash or power cut may lose the last few. One fsync per
            # checkpoint instead of per commit.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return _watch(engine)
    return _watch(create_engine(url, pool_pre_ping=True))


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision of every branch.

    Each area (assets, studio, security ...) may add its own revision branch off the same parent;
    upgrading to "heads" applies all of them.
    """
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def open_database(url: str) -> sessionmaker[Session]:
    engine = make_engine(url)
    migrate(engine)
    return make_sessionmaker(engine)


async def close_database(sessions: sessionmaker[Session], wait_s: float = 10.0) -> None:
    """Closes every connection, so that SQLite checkpoints its WAL into the file.

    A connection still checked out (a request cancelled at the end of a drain settling its job on a
    worker thread) would, returned after ``dispose()``, go back to the discarded pool and stay open
    until the garbage collector finds that pool: wait for it first (up to ``wait_s``)."""
    engine: Engine = sessions.kw["bind"]
    checkedout = getattr(engine.pool, "checkedout", None)  # QueuePool (file SQLite, PostgreSQL)
    deadline = time.monotonic() + wait_s
    while checkedout is not None and checkedout() > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    engine.dispose()


def close_database_at_exit(sessions: sessionmaker[Session]) -> None:
    """After the event loop has ended (every worker thread joined): closes what is left, including
    connections that went back to a pool discarded by an earlier ``dispose()`` (that pool and its
    connections are a reference cycle: only the collector frees them, so collect it now)."""
    gc.collect()
    sessions.kw["bind"].dispose()
