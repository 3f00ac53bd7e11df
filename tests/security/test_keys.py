"""API keys: HMAC under a server secret at rest, constant-time checks, no slow hash for a bad key,
legacy scrypt / SHA-256 hashes upgraded on use, revocation at once."""

import hashlib

import pytest

from pixelserve.db.crud import keys
from pixelserve.db.models import ApiKey
from pixelserve.db.session import open_database
from pixelserve.errors import Unauthorized
from pixelserve.service.auth import Authenticator


SECRET = b"server secret for these tests"


@pytest.fixture
def sessions(tmp_path):
    return open_database(f"sqlite:///{tmp_path / 'k.db'}")


def legacy_row(sessions, key: str, scheme: str) -> None:
    """A key as an earlier version stored it: salted scrypt, or (older still) a plain SHA-256."""
    if scheme == "scrypt":
        salt = b"\1" * 16
        stored = f"scrypt${salt.hex()}${hashlib.scrypt(key.encode(), salt=salt, **keys.SCRYPT).hex()}"
    else:
        stored = hashlib.sha256(key.encode()).hexdigest()
    with sessions() as s:
        s.add(ApiKey(name="old", prefix=key[:10], key_hash=stored))
        s.commit()


def test_keys_are_stored_as_hmac_under_the_server_secret():
    key = "ps_" + "k" * 43
    stored = keys.hash_key(key, SECRET)
    assert stored.startswith("hmac$") and stored == keys.hash_key(key, SECRET)
    assert stored != keys.hash_key(key, b"another secret")
    assert keys.verify_key(key, stored, SECRET)
    assert not keys.verify_key(key[:-1] + "K", stored, SECRET) and not keys.verify_key(key, stored, b"other")


@pytest.mark.parametrize("scheme", ["scrypt", "sha256"])
def test_a_legacy_key_still_works_and_is_rehashed_as_hmac(sessions, scheme):
    key = "ps_" + "L" * 43
    legacy_row(sessions, key, scheme)
    auth = Authenticator(sessions, secret=SECRET)
    assert auth.check(key).name == "old"
    with sessions() as s:
        stored = s.query(ApiKey).one().key_hash
    assert stored == keys.hash_key(key, SECRET)
    assert Authenticator(sessions, secret=SECRET).check(key).name == "old"  # the upgraded hash verifies too


def test_wrong_key_with_a_known_prefix_is_refused(sessions):
    with sessions() as s:
        _, key = keys.create_key(s, "k", SECRET)
    with pytest.raises(Unauthorized):
        Authenticator(sessions, secret=SECRET).check(key[:-1] + ("A" if key[-1] != "A" else "B"))
    with pytest.raises(Unauthorized):  # the right key under another server secret
        Authenticator(sessions, secret=b"another secret").check(key)


@pytest.mark.parametrize("bogus", ["ps_" + "x" * 43, "ps_short", "ps_" + "x" * 42 + "!", "x" * 46, "ps_" + "x" * 200])
def test_unknown_or_malformed_keys_are_refused_without_a_slow_hash(sessions, monkeypatch, bogus):
    """Nothing but an indexed prefix lookup (malformed: not even that) and no scrypt, even with
    legacy scrypt rows in the table."""
    legacy_row(sessions, "ps_" + "L" * 43, "scrypt")
    scrypts, queries = [], []
    monkeypatch.setattr(keys.hashlib, "scrypt", lambda *a, **kw: scrypts.append(1))
    real_scalars = keys.Session.scalars
    monkeypatch.setattr(keys.Session, "scalars",
                        lambda self, *a, **kw: queries.append(1) or real_scalars(self, *a, **kw))
    with pytest.raises(Unauthorized):
        Authenticator(sessions, secret=SECRET).check(bogus)
    assert scrypts == []
    assert len(queries) == (1 if keys.well_formed(bogus) else 0)


def test_verified_keys_skip_the_lookup_but_revocation_is_immediate(sessions, monkeypatch):
    with sessions() as s:
        info, key = keys.create_key(s, "k", SECRET)
    auth = Authenticator(sessions, secret=SECRET)
    calls = []
    real = keys.find_key
    monkeypatch.setattr("pixelserve.service.auth.find_key", lambda s, k, secret: calls.append(k) or real(s, k, secret))
    assert auth.check(key).id == info.id
    assert auth.check(key).id == info.id
    assert len(calls) == 1  # the second request did not look the key up again
    with sessions() as s:
        assert keys.revoke_key(s, info.id)
    with pytest.raises(Unauthorized):
        auth.check(key)


def test_last_use_is_written_at_most_once_a_minute(sessions, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from pixelserve.db.models import ApiKey

    with sessions() as s:
        info, _ = keys.create_key(s, "k", SECRET)
    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    monkeypatch.setattr(keys, "utcnow", lambda: now)

    def last_used():
        with sessions() as s:
            return s.get(ApiKey, info.id).last_used_at.replace(tzinfo=timezone.utc)

    with sessions() as s:
        assert keys.active_key(s, info.id).id == info.id
    assert last_used() == now
    now += timedelta(seconds=30)  # a request within the minute: read, not written again
    with sessions() as s:
        assert keys.active_key(s, info.id) is not None
    assert last_used() == now - timedelta(seconds=30)
    now += timedelta(seconds=31)
    with sessions() as s:
        keys.active_key(s, info.id)
    assert last_used() == now


def test_keys_never_appear_in_logs(sessions, caplog):
    with sessions() as s:
        _, key = keys.create_key(s, "k", SECRET)
    auth = Authenticator(sessions, secret=SECRET)
    caplog.set_level("DEBUG")
    auth.check(key)
    with pytest.raises(Unauthorized):
        auth.check(key + "x")
    assert key not in caplog.text
