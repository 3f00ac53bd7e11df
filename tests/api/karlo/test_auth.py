"""Authorization: KakaoAK <key>; anything else is 401 in Karlo's shape, before the body is read."""

import pytest

from pixelserve.db.crud.keys import create_key, revoke_key
from tests.api.karlo.helpers import T2I, job_count, small


@pytest.mark.parametrize("header", [None, "", "KakaoAK", "KakaoAK wrong-key", "Bearer {key}", "kakaoak {key}", "{key}"])
def test_missing_or_wrong_key_is_401(app_client, api_key, header):
    headers = {} if header is None else {"Authorization": header.format(key=api_key)}
    before = job_count(app_client)
    r = app_client.post(T2I, json=small(), headers=headers)
    assert r.status_code == 401
    assert r.json()["code"] == -401
    assert job_count(app_client) == before


def test_auth_is_checked_before_validation(app_client):
    r = app_client.post(T2I, json={"version": "nope"}, headers={"Authorization": "KakaoAK nope"})
    assert r.status_code == 401


def test_revoked_key_is_refused(app_client):
    with app_client.app.state.sessions() as s:
        info, key = create_key(s, "to revoke", app_client.app.state.auth.secret)
    headers = {"Authorization": f"KakaoAK {key}"}
    assert app_client.post(T2I, json=small(), headers=headers).status_code == 200
    with app_client.app.state.sessions() as s:
        assert revoke_key(s, info.id)
    r = app_client.post(T2I, json=small(), headers=headers)
    assert r.status_code == 401 and r.json()["code"] == -401


def test_keys_are_stored_hashed(app_client):
    from sqlalchemy import select

    from pixelserve.db.models import ApiKey

    with app_client.app.state.sessions() as s:
        _, key = create_key(s, "hash check", app_client.app.state.auth.secret)
        hashes = s.scalars(select(ApiKey.key_hash)).all()
    assert key not in hashes and all(h.startswith("hmac$") and key[10:] not in h for h in hashes)
