"""Database tables: API keys (hashed), jobs and their images."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), index=True)  # shown in listings, not secret
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)  # "hmac$<hex>" (crud/keys.py; older: scrypt, SHA-256)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Per-key request quotas; None: the settings default; 0: unlimited.
    quota_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quota_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quota_per_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Webhooks (service/webhooks): where this key's jobs report when the request names no URL, and
    # the "whsec_<base64>" secret their deliveries are signed with (Standard Webhooks).
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)


class UsageEvent(Base):
    """One accepted request counted against its key's quotas (removed again if the job fails)."""

    __tablename__ = "usage_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    job_id: Mapped[str] = mapped_column(String(36), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_usage_events_key_time", "api_key_id", "created_at"),)


class Job(Base):
    """One generation request. ``status``: queued, running, succeeded, failed, cancelled.

    ``worker_id``/``lease_expires_at``/``attempts`` are for supervised workers that take a job on
    a lease and may die: a job whose lease expired is re-queued, never reported as running forever.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True, index=True)
    dialect: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # as 0001 created it
    request: Mapped[dict] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The caller's own id for the job (X-Job-Id), unique per key; None when the server chose the id.
    client_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)  # X-Webhook-URL or a body field

    __table_args__ = (Index("ux_jobs_key_client_id", "api_key_id", "client_id", unique=True),)

    images: Mapped[list["JobImage"]] = relationship(back_populates="job", order_by="JobImage.index")


class JobImage(Base):
    __tablename__ = "job_images"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    job: Mapped[Job] = relationship(back_populates="images")


class WebhookDelivery(Base):
    """The webhook outbox: one row per event to deliver, written with the job's final state and
    kept until a 2xx answers it or its retries run out (service/webhooks). ``id`` is the
    ``webhook-id`` every attempt carries."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(36), index=True)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    url: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(String(32))  # job.finished | job.failed | job.cancelled
    payload: Mapped[str] = mapped_column(Text)  # the JSON body, exactly as signed and sent
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class IdempotentRequest(Base):
    """A POST sent with an ``Idempotency-Key``: its body's fingerprint and, once done, its answer.

    ``scope`` is a hash of the caller's credentials, so two clients never see each other's keys.
    A row without ``status_code`` is a request still running.
    """

    __tablename__ = "idempotent_requests"
    __table_args__ = (Index("ux_idempotent_scope_key", "scope", "key", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of method, path and body
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class KeyOptions(Base):
    """A key's own settings for one dialect (``namespace``), e.g. A1111's ``/options`` with the key's
    default checkpoint: one client's change never touches another key's. ``api_key_id`` None: the
    settings shared by every caller when auth is off (crud keeps that row single)."""

    __tablename__ = "key_options"
    __table_args__ = (Index("ux_key_options_key_namespace", "api_key_id", "namespace", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    namespace: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict] = mapped_column(JSON)  # option name -> value
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
