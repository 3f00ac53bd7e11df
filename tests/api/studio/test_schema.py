"""The hand-written migration 0003_studio builds exactly the tables of db/models_studio.py."""

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import pixelserve.db.models_studio  # noqa: F401  (registers the Studio tables on Base.metadata)
from pixelserve.db.models import Base
from pixelserve.db.session import MIGRATIONS, make_engine, migrate


def test_migration_matches_models_and_downgrades(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    with engine.connect() as conn:
        diff = [d for d in compare_metadata(MigrationContext.configure(conn), Base.metadata) if "studio" in str(d)]
    assert diff == []
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003_studio@0002")
    assert not [t for t in inspect(engine).get_table_names() if t.startswith("studio")]
