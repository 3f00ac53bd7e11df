"""key options: a key's own settings per dialect (A1111's /options, with the key's default checkpoint)

Revision ID: 0006_key_options
Revises: 0005_jobs_api
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_key_options"
down_revision = "0005_jobs_api"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_options",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("api_key_id", sa.Integer(), sa.ForeignKey("api_keys.id"), nullable=True),
        sa.Column("namespace", sa.String(32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ux_key_options_key_namespace", "key_options", ["api_key_id", "namespace"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_key_options_key_namespace", "key_options")
    op.drop_table("key_options")
