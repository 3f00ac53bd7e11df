"""security: room for salted scrypt API-key hashes

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


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("key_hash", existing_type=sa.String(128), type_=sa.String(64), existing_nullable=False)
