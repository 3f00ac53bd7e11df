"""security: room for salted scrypt API-key hashes; idempotent requests

Revision ID: 0003_security
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_security"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing SHA-256 rows stay valid: they are re-hashed with scrypt on their next use.
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("key_hash", existing_type=sa.String(64), type_=sa.String(128), existing_nullable=False)
    op.create_table(
        "idempotent_requests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(100), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ux_idempotent_scope_key", "idempotent_requests", ["scope", "key"], unique=True)
    op.create_index("ix_idempotent_requests_created_at", "idempotent_requests", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotent_requests_created_at", "idempotent_requests")
    op.drop_index("ux_idempotent_scope_key", "idempotent_requests")
    op.drop_table("idempotent_requests")
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("key_hash", existing_type=sa.String(128), type_=sa.String(64), existing_nullable=False)
