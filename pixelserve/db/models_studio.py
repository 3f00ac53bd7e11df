"""Studio tables: image records, their durable jobs, credits (a ledger), styles, collections.

The owner of every row is the API key's id (``ownerId`` on the wire); 0 when auth is disabled.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pixelserve.db.models import Base, utcnow

JOB_STATES = ("PENDING", "IN_PROGRESS", "COMPLETED", "FAILED")


class CreditAccount(Base):
    """The three balances. Resets are lazy: ``daily_period``/``monthly_period`` name the period
    ("2026-11-24", "2026-11") the balance was last reset for; a read in a later period resets first."""

    __tablename__ = "studio_credit_accounts"

    owner_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    default_credit: Mapped[int] = mapped_column(Integer, default=0)
    daily_credit: Mapped[int] = mapped_column(Integer, default=0)
    monthly_credit: Mapped[int] = mapped_column(Integer, default=0)
    daily_period: Mapped[str] = mapped_column(String(10), default="")
    monthly_period: Mapped[str] = mapped_column(String(7), default="")


class CreditEntry(Base):
    """One movement of credits. ``kind``: grant, reset, reserve, refund, settle.

    Deltas are signed (a reserve is negative). A job has at most one row of each kind
    (unique job_id + kind), which makes settlement idempotent in the database itself.
    """

    __tablename__ = "studio_credit_ledger"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    default_delta: Mapped[int] = mapped_column(Integer, default=0)
    daily_delta: Mapped[int] = mapped_column(Integer, default=0)
    monthly_delta: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("job_id", "kind", name="uq_studio_ledger_job_kind"),)


class StudioJob(Base):
    """One create or upscale request; ``plan`` holds everything needed to run it after a restart."""

    __tablename__ = "studio_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(16), default="create")  # create | upscale
    status: Mapped[str] = mapped_column(String(16), index=True)
    plan: Mapped[dict] = mapped_column(JSON)
    cost_per_image: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The API replica running it and until when; a replica that dies stops renewing its lease, and
    # another one takes the job over when it has expired (service/jobs.py).
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_studio_jobs_status_lease", "status", "lease_expires_at"),)


class StudioImage(Base):
    __tablename__ = "studio_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("studio_jobs.id"), index=True)
    owner_id: Mapped[int] = mapped_column(Integer, index=True)
    index: Mapped[int] = mapped_column(Integer, default=0)
    seed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolution: Mapped[str] = mapped_column(String(20))
    storage_key: Mapped[str | None] = mapped_column(String(500), nullable=True)
    mime_type: Mapped[str] = mapped_column(String(50), default="image/webp")
    platform: Mapped[str] = mapped_column(String(16), default="web")
    api_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    ratio: Mapped[str | None] = mapped_column(String(16), nullable=True)
    prompts: Mapped[dict] = mapped_column(JSON, default=dict)  # every prompt field as sent, plus what was drawn
    group_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    variation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    blur_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # upscale records point at the image they enlarge
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("studio_images.id"), nullable=True, index=True)
    scale_size: Mapped[str | None] = mapped_column(String(4), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StudioBookmark(Base):
    __tablename__ = "studio_bookmarks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("studio_images.id"), index=True)
    owner_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("image_id", "owner_id", name="uq_studio_bookmark"),)


class StudioStyle(Base):
    """A named look: prompt template (``{prompt}`` marks the user's text), negative prompt, sampler,
    optional LoRA. ``owner_id`` NULL: built-in, visible to everyone, read-only."""

    __tablename__ = "studio_styles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(100))
    prompt_template: Mapped[str] = mapped_column(Text, default="{prompt}")
    negative_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    sampler: Mapped[str | None] = mapped_column(String(32), nullable=True)
    steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cfg_scale: Mapped[float | None] = mapped_column(Float, nullable=True)
    lora: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # {"name", "weight"}; migration 0004
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StudioCollection(Base):
    """Reference images and/or a style shared by a group of images."""

    __tablename__ = "studio_collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(100))
    style_id: Mapped[int | None] = mapped_column(ForeignKey("studio_styles.id"), nullable=True)
    images: Mapped[list] = mapped_column(JSON, default=list)  # reference paths "<ownerId>/<file>"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

