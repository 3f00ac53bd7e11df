"""API keys: salted scrypt at rest, constant-time checks, legacy hashes upgraded, revocation at once."""

import hashlib

import pytest

from pixelserve.db.crud import keys
from pixelserve.db.models import ApiKey
from pixelserve.db.session import open_database
from pixelserve.errors import Unauthorized
from pixelserve.service.auth import Authenticator


@pytest.fixture
def sessions(tmp_path):
    return open_database(f"sqlite:///{tmp_path / 'k.db'}")


def test_same_key_hashes_differently_each_time_and_verifies():
    a, b = keys.hash_key("ps_secret"), keys.hash_key("ps_secret")
    assert a != b and a.startswith("scrypt$")
    assert keys.verify_key("ps_secret", a) and keys.verify_key("ps_secret", b)
    assert not keys.verify_key("ps_secreT", a)


def test_a_legacy_sha256_key_still_works_and_is_rehashed(sessions):
    key = "ps_" + "L" * 43
    with sessions() as s:
        s.add(ApiKey(name="old", prefix=key[:10], key_hash=hashlib.sha256(key.encode()).hexdigest()))
        s.commit()
    auth = Authenticator(sessions)
    assert auth.check(key).name == "old"
    with sessions() as s:
        stored = s.query(ApiKey).one().key_hash
    assert stored.startswith("scrypt$") and keys.verify_key(key, stored)
    assert Authenticator(sessions).check(key).name == "old"  # the upgraded hash verifies too


def test_wrong_key_with_a_known_prefix_is_refused(sessions):
    with sessions() as s:
        _, key = keys.create_key(s, "k")
    with pytest.raises(Unauthorized):
        Authenticator(sessions).check(key[:-1] + ("A" if key[-1] != "A" else "B"))


def test_verified_keys_skip_scrypt_but_revocation_is_immediate(sessions, monkeypatch):
    with sessions() as s:
        info, key = keys.create_key(s, "k")
    auth = Authenticator(sessions)
    calls = []
    real = keys.find_key
    monkeypatch.setattr("pixelserve.service.auth.find_key", lambda s, k: calls.append(k) or real(s, k))
    assert auth.check(key).id == info.id
    assert auth.check(key).id == info.id
    assert len(calls) == 1  # the second request did not pay for scrypt again
    with sessions() as s:
        assert keys.revoke_key(s, info.id)
    with pytest.raises(Unauthorized):
        auth.check(key)


def test_last_use_is_written_at_most_once_a_minute(sessions, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from pixelserve.db.models import ApiKey

    with sessions() as s:
        info, _ = keys.create_key(s, "k")
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
        _, key = keys.create_key(s, "k")
    auth = Authenticator(sessions)
    caplog.set_level("DEBUG")
    auth.check(key)
    with pytest.raises(Unauthorized):
        auth.check(key + "x")
    assert key not in caplog.text
