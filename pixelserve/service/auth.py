"""API-key checks shared by every dialect (each dialect only parses its own header)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from pixelserve.db.crud.keys import KeyInfo, authenticate
from pixelserve.errors import Unauthorized


class Authenticator:
    def __init__(self, sessions: sessionmaker[Session], enabled: bool = True):
        self._sessions = sessions
        self.enabled = enabled

    def check(self, key: str | None) -> KeyInfo | None:
        """The caller's key; None when auth is disabled. Raises Unauthorized."""
        if not self.enabled:
            return None
        if not key:
            raise Unauthorized("missing API key")
        with self._sessions() as session:
            info = authenticate(session, key)
        if info is None:
            raise Unauthorized("invalid API key")
        return info
