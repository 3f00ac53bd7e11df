"""The API suite runs on the database PIXELSERVE_TEST_DB names (tests/conftest.py): this proves which."""

from tests.conftest import TEST_DB


def test_the_server_keeps_its_records_in_the_database_under_test(app_client):
    engine = app_client.app.state.sessions.kw["bind"]
    assert engine.dialect.name == {"sqlite": "sqlite", "postgres": "postgresql"}[TEST_DB]
    with app_client.app.state.sessions() as s:
        assert s.connection().dialect.name == engine.dialect.name
