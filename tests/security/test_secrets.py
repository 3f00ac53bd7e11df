"""Secrets: API keys compared in constant time (an unknown prefix is refused unhashed), never
logged and never stored in plain text anywhere in the database; no start with a default or empty
signing secret outside demo mode."""

import hashlib
import hmac
import logging
import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.db.crud import keys
from pixelserve.db.session import open_database
from tests.conftest import make_settings, wait_ready

BIN = os.path.dirname(sys.executable)


def test_every_check_compares_in_constant_time(tmp_path, monkeypatch):
    sessions = open_database(f"sqlite:///{tmp_path / 'k.db'}")
    secret = b"a server secret"
    with sessions() as s:
        _, key = keys.create_key(s, "k", secret)
    compared = []
    real_compare = hmac.compare_digest
    monkeypatch.setattr(keys.hmac, "compare_digest", lambda a, b: compared.append(1) or real_compare(a, b))
    with sessions() as s:
        assert keys.find_key(s, key, secret) is not None
        assert keys.find_key(s, key[:-1] + ("A" if key[-1] != "A" else "B"), secret) is None  # known prefix
        assert keys.find_key(s, "ps_unknown" + key[10:], secret) is None  # unknown prefix: nothing to compare
    assert len(compared) == 2
    assert keys.verify_key("x", hashlib.sha256(b"x").hexdigest(), secret)  # a legacy hash: compared the same way
    assert len(compared) == 3


def test_keys_are_never_logged_nor_stored_in_plain_text(tmp_path, tiny_cache, caplog):
    """Requests with good, wrong and revoked keys, in both dialects, some failing: no log record
    and no byte of the database holds a key (nor its secret part)."""
    settings = make_settings(tmp_path, tiny_cache, studio_resolutions={"sd": {"1:1": "64x64"}}, studio_steps=2)
    app = create_app(settings)
    caplog.set_level(logging.DEBUG)  # every logger, every level
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        with app.state.sessions() as s:
            info, key = keys.create_key(s, "secret holder", app.state.auth.secret)
            _, revoked = keys.create_key(s, "revoked", app.state.auth.secret)
        with app.state.sessions() as s:
            keys.revoke_key(s, info.id + 1)
        wrong = key[:-4] + "AAAA"
        t2i = {"version": "v2.0", "prompt": "a cat", "width": 384, "height": 384, "num_inference_steps": 10}
        for k in (key, wrong, revoked):
            client.post("/v2/inference/karlo/t2i", json=t2i, headers={"Authorization": f"KakaoAK {k}",
                                                                       "Idempotency-Key": "k-1"})
            client.post("/v2/inference/karlo/t2i", json={"version": "bad"}, headers={"Authorization": f"KakaoAK {k}"})
            client.post("/api/images/create", json={"prompt": "a cat", "styleId": 1, "ratio": "1:1", "sample": 1},
                        headers={"X-Api-Key": k})
            client.get("/api/credits", headers={"X-Api-Key": k})
        assert client.post("/v2/inference/karlo/t2i", json=t2i,
                           headers={"Authorization": f"KakaoAK {key}"}).status_code == 200
    text = caplog.text + "".join(str(r.args) + str(getattr(r, "exc_text", "")) for r in caplog.records)
    secrets = [k[10:] for k in (key, wrong, revoked)]  # the part after the shown prefix
    assert caplog.records  # the capture did see the server's logs
    assert not [s for s in secrets if s in text]
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("pixelserve.db*"))
    assert not [s for s in secrets if s.encode() in stored]


@pytest.mark.parametrize("secret", ["", "changeme", "secret", "x" * 40, "short-but-random-9f3"])
def test_the_server_refuses_to_start_with_a_weak_signing_secret(tmp_path, secret):
    config = tmp_path / "models.toml"
    config.write_text("")  # real models configured: not demo mode
    env = {**os.environ, "PIXELSERVE_DATA_DIR": str(tmp_path), "PIXELSERVE_MODELS_CONFIG": str(config),
           "PIXELSERVE_URL_SIGNING_SECRET": secret}
    proc = subprocess.run([os.path.join(BIN, "pixelserve"), "serve", "--port", "1"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "url_signing_secret" in proc.stderr and "refusing to start" in proc.stderr


def test_the_server_refuses_to_start_with_a_weak_api_key_secret(tmp_path):
    config = tmp_path / "models.toml"
    config.write_text("")
    env = {**os.environ, "PIXELSERVE_DATA_DIR": str(tmp_path), "PIXELSERVE_MODELS_CONFIG": str(config),
           "PIXELSERVE_API_KEY_SECRET": "changeme"}
    proc = subprocess.run([os.path.join(BIN, "pixelserve"), "serve", "--port", "1"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "api_key_secret" in proc.stderr and "refusing to start" in proc.stderr


def test_the_api_key_secret_is_generated_once_and_kept(tmp_path):
    from pixelserve.settings import Settings

    first = Settings(data_dir=tmp_path).api_key_hmac_secret()
    assert len(first) >= 32 and Settings(data_dir=tmp_path).api_key_hmac_secret() == first
    assert (tmp_path / "secrets" / "api_keys.key").stat().st_mode & 0o077 == 0
    assert first != Settings(data_dir=tmp_path).signing_secret()
    assert Settings(data_dir=tmp_path, api_key_secret="s" * 40).api_key_hmac_secret() == b"s" * 40
