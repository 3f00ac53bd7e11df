"""Failed-authentication limits: a token bucket per client address and one per API-key prefix.

Each failed authentication (an answer of 401) takes a token from the bucket of the client's
address and from that of the key prefix it tried; buckets refill at a steady rate. While either is
empty, a request is refused (``AuthThrottled``: 429 with Retry-After, in the dialect's shape)
before its body is read, unless it carries a key that verifies without a slow hash: an
authenticated caller is never refused by this limit, even from an address that is.

The client's address is the TCP peer's, or the one ``X-Forwarded-For`` names when the peer is a
trusted proxy (``PIXELSERVE_TRUSTED_PROXIES``): the right-most entry that is not a trusted proxy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, NamedTuple

from pixelserve.db.crud.keys import KEY_PREFIX, PREFIX_LEN, well_formed
from pixelserve.errors import AuthThrottled
from pixelserve.settings import IPNetwork

if TYPE_CHECKING:
    from pixelserve.service.auth import Authenticator

#: Buckets remembered at most (least recently touched dropped first): random addresses or prefixes
#: cannot grow memory without bound. A dropped bucket was at most this many failures old.
MAX_TRACKED = 65_536

class TokenBuckets:
    """Named token buckets of ``burst`` tokens refilled at ``per_second`` (> 0); a missing one is full."""

    def __init__(self, burst: float, per_second: float, clock: Callable[[], float] = time.monotonic,
                 max_tracked: int = MAX_TRACKED):
        self.burst, self.per_second, self._clock, self._max = burst, per_second, clock, max_tracked
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # name -> (tokens, when)
        self._lock = threading.Lock()

    def _tokens(self, name: str, now: float) -> float:
        tokens, when = self._buckets.get(name, (self.burst, now))
        return min(self.burst, tokens + (now - when) * self.per_second)

    def wait(self, name: str) -> float:
        """Seconds until ``name`` has a token again (0: it has one now)."""
        with self._lock:
            missing = 1 - self._tokens(name, self._clock())
        return max(0.0, missing) / self.per_second

    def take(self, name: str) -> None:
        with self._lock:
            now = self._clock()
            self._buckets[name] = (max(0.0, self._tokens(name, now) - 1), now)
            self._buckets.move_to_end(name)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)


class Attempt(NamedTuple):
    """Who an attempt to authenticate comes from, and the key it tries."""

    address: str | None
    key: str | None  # the credential it carries, any scheme (never logged)

    @property
    def prefix(self) -> str | None:
        return self.key[:PREFIX_LEN] if self.key and self.key.startswith(KEY_PREFIX) else None


def credential_of(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request carries: ``X-Api-Key`` (Studio) or the token of ``Authorization: <scheme> <key>``."""
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    token = (authorization or "").strip().partition(" ")[2].strip()
    return token or None


class AuthLimiter:
    def __init__(self, auth: Authenticator, burst: int, per_minute: float, trusted_proxies: tuple[IPNetwork, ...],
                 clock: Callable[[], float] = time.monotonic, delay_s: float = 0.0):
        self._auth = auth
        self.delay_s = delay_s
        self._buckets = TokenBuckets(burst, per_minute / 60, clock)
        self._trusted = trusted_proxies

    def _trusted_peer(self, host: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(host or "")
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    def address_of(self, peer: str | None, forwarded_for: str | None) -> str | None:
        if not forwarded_for or not self._trusted_peer(peer):
            return peer
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        while hops and self._trusted_peer(hops[-1]):
            hops.pop()
        return hops[-1] if hops else peer

    def attempt(self, peer: str | None, headers) -> Attempt:
        return Attempt(self.address_of(peer, headers.get("x-forwarded-for")),
                      credential_of(headers.get("authorization"), headers.get("x-api-key")))

    def _names(self, attempt: Attempt) -> list[str]:
        names = [f"addr {attempt.address}"] if attempt.address else []
        return names + ([f"key {attempt.prefix}"] if attempt.prefix else [])

    async def admit(self, attempt: Attempt) -> None:
        """Raises ``AuthThrottled`` when the caller's address or key prefix is over the limit and
        its key does not verify (cheaply)."""
        wait = max((self._buckets.wait(n) for n in self._names(attempt)), default=0.0)
        if wait <= 0 or await self._verifies(attempt.key):
            return
        raise AuthThrottled("too many failed authentications from this client; retry later",
                            retry_after=max(1, math.ceil(wait)))

    async def _verifies(self, key: str | None) -> bool:
        if not key or not well_formed(key):
            return False
        return self._auth.remembered(key) or await asyncio.to_thread(self._auth.known, key)

    async def hold(self) -> None:
        """Before a throttled request's 429: a client that sends its next bogus key only after the last
        answer (most do) then costs the server one refusal per ``delay_s``, not as many as it can
        parse; waiting here is a sleeping coroutine, no CPU."""
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)

    def failed(self, attempt: Attempt) -> None:
        for name in self._names(attempt):
            self._buckets.take(name)
