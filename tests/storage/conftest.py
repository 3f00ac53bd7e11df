import secrets

import pytest

from tests.storage import seaweed


@pytest.fixture
def bucket(seaweed_s3) -> str:
    """The run's bucket (SeaweedFS gives each bucket its own volumes: tests share one)."""
    return seaweed.BUCKET


@pytest.fixture
def prefix() -> str:
    """A folder of the bucket that is this test's alone."""
    return f"t-{secrets.token_hex(6)}/"
