"""The asset library: weights (LoRAs, textual inversions, VAEs, checkpoints, ControlNets) by name.

``scope`` says whose an asset is: ``public`` (everyone's; created by an admin or from the model
configuration), ``key:<api key id>``, or ``local`` when auth is disabled. Names are unique within
a scope and never become paths: an uploaded file is stored as ``<id>.safetensors`` in the asset
folder. ``meta`` keeps the dialect's own description of the asset (OctoAI's ``data``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pixelserve.db.models import Base, utcnow

#: kind: what the engine does with the file. origin: "upload" (a file in the asset folder) or
#: "config" (a model configuration entry: a configured path, a model id, or a tiny demo adapter).
KINDS = ("checkpoint", "controlnet", "lora", "textual_inversion", "vae")


class AssetRecord(Base):
    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("scope", "name", name="uq_assets_scope_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scope: Mapped[str] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    family: Mapped[str] = mapped_column(String(16))  # sd | sdxl
    description: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(32), index=True)
    status_details: Mapped[str] = mapped_column(Text, default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    origin: Mapped[str] = mapped_column(String(16), default="upload")
    path: Mapped[str | None] = mapped_column(Text, nullable=True)  # origin config: a configured file or folder
    model_id: Mapped[str | None] = mapped_column(String(200), nullable=True)  # a checkpoint standing for a model
    preprocess: Mapped[str | None] = mapped_column(String(32), nullable=True)  # ControlNet: its control map maker
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
