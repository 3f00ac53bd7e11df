"""pixelserve assets list | add | remove: the asset library, as an admin (any scope, public assets)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pixelserve.settings import Settings

assets = typer.Typer(help="The asset library (LoRAs, textual inversions, VAEs, checkpoints, ControlNets).",
                     no_args_is_help=True)

KINDS = ("lora", "textual_inversion", "vae", "checkpoint", "controlnet")
ENGINES = {"sd": "sd", "sdxl": "sdxl", "controlnet-sd15": "sd", "controlnet-sdxl": "sdxl",
           "image/stable-diffusion-v1-5": "sd", "image/stable-diffusion-xl-v1-0": "sdxl",
           "image/controlnet-sd15": "sd", "image/controlnet-sdxl": "sdxl"}
WIRE_ENGINE = {("controlnet", "sd"): "image/controlnet-sd15", ("controlnet", "sdxl"): "image/controlnet-sdxl",
               "sd": "image/stable-diffusion-v1-5", "sdxl": "image/stable-diffusion-xl-v1-0"}


def _service():
    from pixelserve.db.session import open_database
    from pixelserve.dialects.octoai import config as octoai_config
    from pixelserve.service.assets import AssetService

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    octoai = octoai_config.load(settings.models)
    service = AssetService(open_database(settings.db_url), settings.asset_dir, settings.models, settings.cache_dir,
                           max_bytes=settings.asset_max_bytes, configured=octoai.public_assets(settings.models),
                           family_models=octoai.family_models())
    service.sync_config()
    return service


def _shown(row) -> str:
    return f"octoai:{row.name}" if row.scope == "public" else f"{row.scope}/{row.name}"


def _find(service, ref: str):
    """An asset by id, ``octoai:<name>`` or ``<scope>/<name>``."""
    from pixelserve.service.asset_refs import PUBLIC

    for row in service.all_rows():
        if ref in (row.id, _shown(row)) or (row.scope == PUBLIC and ref == row.name):
            return row
    typer.echo(f"no asset {ref!r}", err=True)
    raise typer.Exit(1)


@assets.command("list")
def assets_list() -> None:
    """Every asset: its name as requests write it, kind, family, status, size, where it comes from."""
    for row in _service().all_rows():
        source = row.model_id and f"model {row.model_id}" or row.path or (
            "upload" if row.origin == "upload" else "tiny demo adapter")
        details = f"\t{row.status_details}" if row.status_details else ""
        typer.echo(f"{_shown(row)}\t{row.kind}\t{row.family}\t{row.status}\t{row.size_bytes}\t{source}\t{row.id}"
                   f"{details}")


@assets.command("add")
def assets_add(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a local .safetensors file")],
    name: Annotated[str, typer.Option(help="the asset name (letters, digits, . _ -)")],
    kind: Annotated[str, typer.Option("--type", help=" | ".join(KINDS))],
    engine: Annotated[str, typer.Option(help="sd | sdxl | controlnet-sd15 | controlnet-sdxl")],
    public: Annotated[bool, typer.Option("--public", help="everyone's, requested as octoai:<name>")] = False,
    owner: Annotated[Optional[int], typer.Option(help="the API key id owning a private asset")] = None,
    trigger_word: Annotated[Optional[list[str]], typer.Option(help="LoRA / textual inversion trigger word")] = None,
    description: str = "",
) -> None:
    """Copy a weights file into the library and validate it (status ready, or rejected and why)."""
    from pixelserve.service.asset_refs import ASSET_NAME
    from pixelserve.errors import PixelserveError
    from pixelserve.service.asset_refs import PUBLIC

    if kind not in KINDS or engine not in ENGINES or not ASSET_NAME.fullmatch(name):
        typer.echo(f"--type must be one of {', '.join(KINDS)}, --engine one of sd, sdxl, controlnet-sd15, "
                   f"controlnet-sdxl, and --name match {ASSET_NAME.pattern}", err=True)
        raise typer.Exit(2)
    if public == (owner is not None):
        typer.echo("give exactly one of --public and --owner KEY_ID", err=True)
        raise typer.Exit(2)
    family = ENGINES[engine]
    if kind == "checkpoint" and "controlnet" in engine:  # OctoAI's way of naming a ControlNet
        kind = "controlnet"
    meta = {"engine": WIRE_ENGINE.get((kind, family)) or WIRE_ENGINE[family], "file_format": "safetensors"}
    if trigger_word:
        meta["trigger_words"] = list(trigger_word)
    try:
        row = _service().add_file(PUBLIC if public else f"key:{owner}", path, name=name, kind=kind, family=family,
                                  description=description, meta=meta)
    except PixelserveError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{_shown(row)}\t{row.status}\t{row.id}" + (f"\t{row.status_details}" if row.status_details else ""))
    if row.status != "ready":
        raise typer.Exit(1)


@assets.command("remove")
def assets_remove(ref: Annotated[str, typer.Argument(help="id, octoai:<name> or <scope>/<name>")]) -> None:
    """Delete an asset (and its file)."""
    service = _service()
    row = _find(service, ref)
    if row.origin == "config":
        typer.echo(f"{_shown(row)} comes from the model configuration; remove it there", err=True)
        raise typer.Exit(1)
    service.delete(row.id)
    typer.echo(f"removed {_shown(row)} ({row.id})")
