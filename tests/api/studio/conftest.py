"""A Studio server on the tiny models at small sizes (the default ratio table stays the real one)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from tests.conftest import make_settings, wait_ready

#: 64-128 px for every ratio, so the tiny models run in well under a second per image.
SMALL = {"1:1": "64x64", "3:4": "64x88", "4:3": "88x64", "9:16": "64x112", "16:9": "112x64"}
SMALL_SETTINGS = dict(studio_resolutions={"sd": SMALL, "sdxl": SMALL}, studio_steps=2, studio_daily_credit=1000)


def new_key(app, name: str = "studio") -> tuple[int, str]:
    with app.state.sessions() as s:
        info, key = create_key(s, name, app.state.auth.secret)
    return info.id, key


@pytest.fixture(scope="session")
def studio_client(tmp_path_factory, tiny_cache):
    settings = make_settings(tmp_path_factory.mktemp("studio"), tiny_cache, **SMALL_SETTINGS)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        # The first key of this server is owner 1: the owner of the spec's "1/reference-1423131.png".
        owner_id, client.spec_key = new_key(client.app, "spec")
        assert owner_id == 1
        yield client


@pytest.fixture
def owner(studio_client):
    """A fresh API key (a fresh owner with its own credits) per test: (owner id, headers)."""
    owner_id, key = new_key(studio_client.app)
    return owner_id, {"X-Api-Key": key}
