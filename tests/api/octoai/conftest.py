"""One OctoAI test server for this folder: the tiny demo models, plus 64x64 and 128x128 allowed so
that generation stays fast (the documented sizes are the tiny models' too, only slower)."""

import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.db.crud.keys import create_key
from tests.conftest import make_settings, wait_ready

EXTRA_SIZES = "64x64,128x128,128x64"


@pytest.fixture(scope="package")
def octo_client(tmp_path_factory, tiny_cache):
    settings = make_settings(tmp_path_factory.mktemp("octoai"), tiny_cache, octoai_extra_sizes=EXTRA_SIZES)
    app = create_app(settings)
    with TestClient(app) as client:
        wait_ready(client)
        yield client


def _key(client, name: str) -> str:
    with client.app.state.sessions() as s:
        _, key = create_key(s, name, client.app.state.auth.secret)
    return key


@pytest.fixture(scope="package")
def octo_key(octo_client) -> str:
    return _key(octo_client, "octoai tests")


@pytest.fixture(scope="package")
def other_key(octo_client) -> str:
    return _key(octo_client, "octoai tests, another account")


@pytest.fixture
def octo(octo_client, octo_key):
    """POST a body to /generate/<engine> with a valid Bearer token."""

    def post(body, engine="sd", **kwargs):
        headers = {"Authorization": f"Bearer {octo_key}", **kwargs.pop("headers", {})}
        return octo_client.post(f"/generate/{engine}", json=body, headers=headers, **kwargs)

    return post
