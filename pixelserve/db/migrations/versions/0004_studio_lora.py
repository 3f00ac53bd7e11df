"""studio: a style may name a LoRA (stored; refused at generation until the engine applies LoRAs)

Revision ID: 0004_studio_lora
Revises: 0003_studio
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_studio_lora"
down_revision = "0003_studio"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studio_styles") as batch:
        batch.add_column(sa.Column("lora", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("studio_styles") as batch:
        batch.drop_column("lora")
