"""scale: leases on Studio jobs (several API replicas share one database); PostgreSQL sequences

Revision ID: 0004_scale
Revises: 0003_studio
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_scale"
down_revision = "0003_studio"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studio_jobs") as batch:
        batch.add_column(sa.Column("worker_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_studio_jobs_status_lease", "studio_jobs", ["status", "lease_expires_at"])
    if op.get_bind().dialect.name == "postgresql":
        # 0003_studio inserted the built-in styles with explicit ids, which PostgreSQL's sequence
        # does not see: without this the first user style would collide with style 1.
        op.execute("SELECT setval(pg_get_serial_sequence('studio_styles', 'id'), "
                   "GREATEST((SELECT MAX(id) FROM studio_styles), 1))")


def downgrade() -> None:
    op.drop_index("ix_studio_jobs_status_lease", "studio_jobs")
    with op.batch_alter_table("studio_jobs") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("worker_id")
