"""API-key checks shared by every dialect (each dialect only parses its own header)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from pixelserve.core import timing
from pixelserve.db.crud.keys import active_key, find_key, well_formed
from pixelserve.errors import Unauthorized

#: Verified keys remembered in memory (a SHA-256 of the key -> its id), sparing the prefix lookup;
#: revocation is still read from the database on every request, so a revoked key stops working at once.
VERIFIED_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Caller:
    """Who a request comes from, as dialects and services see it (not the key's database record):
    the API key's id, which owns quota, private assets, Studio images and credits; its name, for logs."""

    id: int
    name: str


class Authenticator:
    def __init__(self, sessions: sessionmaker[Session], enabled: bool = True, *, secret: bytes):
        self._sessions = sessions
        self.enabled = enabled
        self.secret = secret  # API keys' HMAC secret (Settings.api_key_hmac_secret)
        self._verified: OrderedDict[bytes, int] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, key: str | None) -> Caller | None:
        """The caller's key; None when auth is disabled. Raises Unauthorized."""
        if not self.enabled:
            return None
        with timing.stage("auth"):
            return self._check(key)

    def _check(self, key: str | None) -> Caller:
        if not key:
            raise Unauthorized("missing API key")
        if not well_formed(key):
            raise Unauthorized("invalid API key")  # no database, no hash
        fingerprint = hashlib.sha256(key.encode()).digest()
        with self._lock:
            key_id = self._verified.get(fingerprint)
        with self._sessions() as session:
            if key_id is None:
                key_id = find_key(session, key, self.secret)
            info = None if key_id is None else active_key(session, key_id)
        if info is None:
            raise Unauthorized("invalid API key")
        with self._lock:
            self._verified[fingerprint] = key_id
            self._verified.move_to_end(fingerprint)
            while len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return Caller(id=info.id, name=info.name)

    def remembered(self, key: str) -> bool:
        """Whether ``key`` was verified recently (memory only; for service/auth_limits.py)."""
        with self._lock:
            return hashlib.sha256(key.encode()).digest() in self._verified

    def known(self, key: str) -> bool:
        """Whether ``key`` is an active key, found without a slow (legacy scrypt) hash."""
        if not well_formed(key):
            return False
        with self._sessions() as session:
            key_id = find_key(session, key, self.secret, slow=False)
            return key_id is not None and active_key(session, key_id) is not None
