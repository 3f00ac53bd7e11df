"""studio: image records, durable jobs, credit ledger, styles, collections, bookmarks

Revision ID: 0003_studio
Revises: 0002
"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0003_studio"
down_revision = "0002"
branch_labels = None
depends_on = None

#: Built-in styles (owner NULL): visible to every owner, read-only.
BUILTIN_STYLES = [
    (1, "photographic", "photograph of {prompt}, 35mm, natural light, highly detailed",
     "drawing, painting, illustration, cartoon, blurry"),
    (2, "anime", "anime artwork of {prompt}, vibrant colours, clean line art", "photo, realistic, blurry"),
    (3, "watercolor", "watercolor painting of {prompt}, soft washes, paper texture", "photo, harsh lines"),
    (4, "3d-model", "3D render of {prompt}, octane render, studio lighting", "flat, 2d, sketch"),
]


def _ts():
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "studio_credit_accounts",
        sa.Column("owner_id", sa.Integer(), primary_key=True),
        sa.Column("default_credit", sa.Integer(), nullable=False),
        sa.Column("daily_credit", sa.Integer(), nullable=False),
        sa.Column("monthly_credit", sa.Integer(), nullable=False),
        sa.Column("daily_period", sa.String(10), nullable=False),
        sa.Column("monthly_period", sa.String(7), nullable=False),
    )
    op.create_table(
        "studio_credit_ledger",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_id", sa.Integer(), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("default_delta", sa.Integer(), nullable=False),
        sa.Column("daily_delta", sa.Integer(), nullable=False),
        sa.Column("monthly_delta", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        _ts(),
        sa.UniqueConstraint("job_id", "kind", name="uq_studio_ledger_job_kind"),
    )
    op.create_table(
        "studio_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_id", sa.Integer(), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("cost_per_image", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts(),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    styles = op.create_table(
        "studio_styles",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_id", sa.Integer(), nullable=True, index=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prompt_template", sa.Text(), nullable=False),
        sa.Column("negative_prompt", sa.Text(), nullable=True),
        sa.Column("sampler", sa.String(32), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=True),
        sa.Column("cfg_scale", sa.Float(), nullable=True),
        _ts(),
    )
    op.create_table(
        "studio_images",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("studio_jobs.id"), nullable=False, index=True),
        sa.Column("owner_id", sa.Integer(), nullable=False, index=True),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("resolution", sa.String(20), nullable=False),
        sa.Column("storage_key", sa.String(500), nullable=True),
        sa.Column("mime_type", sa.String(50), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("api_type", sa.String(100), nullable=True),
        sa.Column("ratio", sa.String(16), nullable=True),
        sa.Column("prompts", sa.JSON(), nullable=False),
        sa.Column("group_id", sa.String(200), nullable=True, index=True),
        sa.Column("variation_id", sa.Integer(), nullable=True),
        sa.Column("blur_reason", sa.String(200), nullable=True),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("studio_images.id"), nullable=True, index=True),
        sa.Column("scale_size", sa.String(4), nullable=True),
        _ts(),
    )
    op.create_table(
        "studio_bookmarks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("studio_images.id"), nullable=False, index=True),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        _ts(),
        sa.UniqueConstraint("image_id", "owner_id", name="uq_studio_bookmark"),
    )
    op.create_table(
        "studio_collections",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_id", sa.Integer(), nullable=False, index=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("style_id", sa.Integer(), sa.ForeignKey("studio_styles.id"), nullable=True),
        sa.Column("images", sa.JSON(), nullable=False),
        _ts(),
    )
    now = datetime.now(timezone.utc)
    op.bulk_insert(styles, [
        {"id": i, "owner_id": None, "name": name, "prompt_template": template, "negative_prompt": negative,
         "sampler": None, "steps": None, "cfg_scale": None, "created_at": now}
        for i, name, template, negative in BUILTIN_STYLES
    ])


def downgrade() -> None:
    for table in ("studio_collections", "studio_bookmarks", "studio_images", "studio_styles", "studio_jobs",
                  "studio_credit_ledger", "studio_credit_accounts"):
        op.drop_table(table)
