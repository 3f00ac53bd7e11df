import pytest

from tests.api.karlo.helpers import T2I


@pytest.fixture
def karlo(app_client, api_key):
    """POST to a Karlo endpoint with a valid key."""

    def post(body, path=T2I, **kwargs):
        headers = {"Authorization": f"KakaoAK {api_key}", **kwargs.pop("headers", {})}
        return app_client.post(path, json=body, headers=headers, **kwargs)

    return post
