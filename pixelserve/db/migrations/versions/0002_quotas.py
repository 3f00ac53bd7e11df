"""quotas: per-key limits and usage events

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("quota_per_minute", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("quota_per_day", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("quota_per_month", sa.Integer(), nullable=True))
    op.create_table(
        "usage_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("api_key_id", sa.Integer(), sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_usage_events_key_time", "usage_events", ["api_key_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_events_key_time", "usage_events")
    op.drop_table("usage_events")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("quota_per_month")
        batch.drop_column("quota_per_day")
        batch.drop_column("quota_per_minute")
