"""The Alembic migrations build exactly the models' tables on SQLite and on PostgreSQL, and go
down to nothing and up again on both."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

import pixelserve.db.models_studio  # noqa: F401  (registers the Studio tables on Base.metadata)
from pixelserve.db.crud import studio as crud
from pixelserve.db.models import Base
from pixelserve.db.session import MIGRATIONS, make_engine, make_sessionmaker, migrate


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    return request.getfixturevalue("pg_url")


def _alembic(engine, action, target) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        action(cfg, target)


def test_migrations_match_models_down_and_up(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    _alembic(engine, command.downgrade, "0004_scale@0003_studio")
    assert "lease_expires_at" not in {c["name"] for c in inspect(engine).get_columns("studio_jobs")}
    _alembic(engine, command.downgrade, "base")
    assert [t for t in inspect(engine).get_table_names() if t != "alembic_version"] == []
    migrate(engine)
    assert "lease_expires_at" in {c["name"] for c in inspect(engine).get_columns("studio_jobs")}
    engine.dispose()


def test_user_styles_get_ids_after_the_builtin_ones(db_url):
    """0003_studio inserts built-in styles with explicit ids; a new style must not collide (PostgreSQL
    sequences do not see explicit ids: 0004_scale moves them on)."""
    engine = make_engine(db_url)
    migrate(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        builtin = max(s.scalars(select(pixelserve.db.models_studio.StudioStyle.id)))
        row = crud.save_style(s, 7, {"name": "mine", "prompt_template": "{prompt}, mine"})
    assert row.id > builtin
    engine.dispose()
