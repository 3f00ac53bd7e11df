"""assets: the asset library (OctoAI's /v1/assets); merges the security and studio heads

Revision ID: 0004_assets
Revises: 0003_security, 0003_studio
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_assets"
down_revision = ("0003_security", "0003_studio")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("scope", sa.String(40), nullable=False, index=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False, index=True),
        sa.Column("family", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("status_details", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("model_id", sa.String(200), nullable=True),
        sa.Column("preprocess", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("scope", "name", name="uq_assets_scope_name"),
    )


def downgrade() -> None:
    op.drop_table("assets")
