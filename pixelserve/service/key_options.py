"""Per-key settings a dialect keeps for its callers (A1111's ``/options``: the caller's default model).

Each key has its own, so one client's change never touches another's jobs; with auth off (caller
None) every caller shares one set. Reads are cached in memory and the cache is updated on write, so
a generation request does not read the database for them; a server's own writes are seen at once
(other replicas read theirs from the database after ``CACHE_SECONDS``).
"""

from __future__ import annotations

import asyncio
import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from pixelserve.db.crud import key_options as crud

#: How long a cached read is trusted (another replica's write shows after this).
CACHE_SECONDS = 5.0


class KeyOptionsService:
    def __init__(self, sessions: sessionmaker[Session], namespace: str):
        self._sessions = sessions
        self.namespace = namespace
        self._cache: dict[int | None, tuple[float, dict]] = {}
        self._lock = threading.Lock()

    def get(self, caller_id: int | None) -> dict:
        """The caller's options (a copy); {} when it set none."""
        with self._lock:
            cached = self._cache.get(caller_id)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return dict(cached[1])
        with self._sessions() as session:
            values = crud.get_options(session, caller_id, self.namespace)
        with self._lock:
            self._cache[caller_id] = (time.monotonic(), values)
        return dict(values)

    def update(self, caller_id: int | None, values: dict) -> dict:
        """Merges ``values`` in (None removes an option); returns the caller's options."""
        with self._sessions() as session:
            merged = crud.update_options(session, caller_id, self.namespace, values)
        with self._lock:
            self._cache[caller_id] = (time.monotonic(), merged)
        return dict(merged)

    async def aget(self, caller_id: int | None) -> dict:
        return await asyncio.to_thread(self.get, caller_id)

    async def aupdate(self, caller_id: int | None, values: dict) -> dict:
        return await asyncio.to_thread(self.update, caller_id, values)
