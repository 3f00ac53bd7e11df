"""Shared fixtures: one tiny-model cache for the whole run, and a ready app per need."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.settings import Settings
from tests.db import pg
from tests.storage import seaweed

#: "postgres": every server the tests start keeps its records in PostgreSQL (one database per
#: data dir, on a throwaway cluster) instead of SQLite, e.g. PIXELSERVE_TEST_DB=postgres pytest tests/api
TEST_DB = os.environ.get("PIXELSERVE_TEST_DB", "sqlite")
#: "s3": every server's files go to a SeaweedFS bucket (a folder per data dir) instead of local disk;
#: image URLs still go through pixelserve's signed route, which the URL tests exercise.
TEST_STORE = os.environ.get("PIXELSERVE_TEST_STORE", "local")
#: Servers and engines built from settings here do not gc.freeze() the test process once ready (a full
#: collection of pytest's heap each time, and a growing permanent generation between starts and
#: stops); tests/engine/weights/test_gc_freeze.py turns it on where the freeze itself is under test.
os.environ.setdefault("PIXELSERVE_GC_FREEZE", "false")
#: The shared servers of the suite see many deliberate 401s from one client; the failed-auth limit
#: would turn the later ones into 429s. Its own tests (tests/security/test_auth_limits.py) set it.
os.environ.setdefault("PIXELSERVE_AUTH_FAIL_BURST", "0")


def pytest_collection_modifyitems(items):
    """`make test` runs the suite on two pytest-xdist workers (``-n 2 --dist loadgroup``): each file
    stays on one worker, so its module fixtures (servers, clusters) are built once; the Ray files
    share one worker, as two Ray clusters at once would take every CPU of a small machine."""
    for item in items:
        group = "ray" if item.get_closest_marker("ray") else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session", autouse=True)
def database_under_test():
    if TEST_DB == "sqlite":
        yield
        return
    if TEST_DB != "postgres":
        pytest.exit(f"PIXELSERVE_TEST_DB must be sqlite or postgres, not {TEST_DB!r}", returncode=4)
    reason = pg.unavailable()
    if reason:
        pytest.exit(f"PIXELSERVE_TEST_DB=postgres, but {reason}", returncode=4)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Settings, "db_url", property(lambda self: self.database_url or pg.database_for(self.data_dir)))
        yield
    pg.stop()


@pytest.fixture(scope="session", autouse=True)
def store_under_test():
    if TEST_STORE == "local":
        yield
        return
    reason = seaweed.unavailable() if TEST_STORE == "s3" else f"PIXELSERVE_TEST_STORE={TEST_STORE!r}: local or s3"
    if reason:
        pytest.exit(f"PIXELSERVE_TEST_STORE: {reason}", returncode=4)
    import hashlib

    import pixelserve.app
    from pixelserve.storage.s3 import S3Store

    s3, original = seaweed.server(), pixelserve.app.build_store

    def build_store(settings):
        if settings.store != "local":
            return original(settings)
        folder = hashlib.sha1(str(settings.data_dir).encode()).hexdigest()[:16]
        return S3Store(seaweed.BUCKET, prefix=folder, endpoint_url=s3.endpoint, access_key_id=s3.access_key,
                       secret_access_key=s3.secret_key, presigned_urls=False)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pixelserve.app, "build_store", build_store)
        yield
    seaweed.stop()


def _server_or_skip(kind):
    """``kind.server()`` (tests/db/pg.py, tests/storage/seaweed.py), or a skip saying why it cannot
    run here. Present but failing to start is an error, not a skip."""
    reason = kind.unavailable()
    if reason:
        pytest.skip(reason)
    return kind.server()


@pytest.fixture(scope="session")
def seaweed_s3():
    """A real S3 server (SeaweedFS) for this run."""
    return _server_or_skip(seaweed)


@pytest.fixture(scope="session")
def pg_server():
    """The throwaway PostgreSQL cluster of this run."""
    return _server_or_skip(pg)


@pytest.fixture
def pg_url(pg_server, tmp_path) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return pg.database_for(tmp_path)


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """A cache folder holding the tiny models (with the demo's refiner and IP-Adapters), built once per
    test run."""
    from pixelserve.core.model_config import demo_config
    from pixelserve.engine.demo import tiny, tiny_adapters

    cache = tmp_path_factory.mktemp("cache")
    for family in tiny.TINY_FAMILIES:
        tiny.ensure_tiny_model(family, cache / "tiny")
    for spec in demo_config(cache).models.values():
        tiny_adapters.ensure_demo_parts(spec)
    return cache


@pytest.fixture
def frozen_quota_clock(monkeypatch):
    """Holds the quota clock in the middle of one minute, so a per-minute quota test cannot see its
    window roll over between two requests (a slow machine would otherwise make it flaky)."""
    from pixelserve.db.crud import quotas

    fixed = quotas.utcnow().replace(second=30, microsecond=0)
    monkeypatch.setattr(quotas, "utcnow", lambda: fixed)
    return fixed


@pytest.fixture
def data_dir(tmp_path, tiny_cache, monkeypatch):
    """A data dir holding the tiny models, named by PIXELSERVE_DATA_DIR (for CLI commands)."""
    shutil.copytree(tiny_cache, tmp_path / "cache")
    monkeypatch.setenv("PIXELSERVE_DATA_DIR", str(tmp_path))
    return tmp_path


def make_settings(data_dir: Path, tiny_cache: Path, **overrides) -> Settings:
    """Settings on a fresh data dir that reuses the built tiny models (copied, not rebuilt)."""
    cache = data_dir / "cache"
    if not cache.exists():
        shutil.copytree(tiny_cache, cache)
    return Settings(data_dir=data_dir, **overrides)


def wait_ready(client: TestClient, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/health/ready").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"not ready: {client.get('/health/ready').json()}")


@pytest.fixture(scope="session")
def app_client(tmp_path_factory, tiny_cache):
    """One ready server for the API tests (its data dir is shared by them)."""
    settings = make_settings(tmp_path_factory.mktemp("data"), tiny_cache)
    app = create_app(settings)
    with TestClient(app) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="session")
def api_key(app_client) -> str:
    from pixelserve.db.crud.keys import create_key

    with app_client.app.state.sessions() as s:
        _, key = create_key(s, "tests", app_client.app.state.auth.secret)
    return key
