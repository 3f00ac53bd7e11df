"""What a refused request must leave untouched: every table's row count and every file in the store."""

from __future__ import annotations

from sqlalchemy import func, select

import pixelserve.db.models_assets  # noqa: F401  (registers the asset library's table on Base.metadata)
import pixelserve.db.models_studio  # noqa: F401  (registers the Studio tables on Base.metadata)
from pixelserve.db.models import Base


def snapshot(app) -> dict:
    """Row counts of every table (jobs, images, ledger, quota use, idempotency records ...) and the
    store's files. Balances and quota counters are rows here: any movement adds one."""
    with app.state.sessions() as s:
        rows = {t.name: s.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}
    root = app.state.store.root
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    return {"rows": rows, "files": files}
