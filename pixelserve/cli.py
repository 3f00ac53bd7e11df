"""pixelserve serve | generate | keys | models | credits | assets | webhooks."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from pixelserve.cli_assets import assets
from pixelserve import cli_webhooks
from pixelserve.settings import Settings

cli = typer.Typer(help="Self-hosted image-generation API server.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
keys = typer.Typer(help="Manage API keys.", no_args_is_help=True)
models = typer.Typer(help="Configured models.", no_args_is_help=True)
cli.add_typer(keys, name="keys")
cli.add_typer(models, name="models")
cli.add_typer(assets, name="assets")
cli_webhooks.register(keys, cli)  # keys webhook | keys webhook-secret | webhooks list | retry


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.command()
def serve(
    host: str = "127.0.0.1", port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    engine: Annotated[Optional[str], typer.Option(help="local | process | ray (default: PIXELSERVE_ENGINE)")] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster, e.g. auto or ray://head:10001")] = None,
    demo_key: Annotated[Optional[str], typer.Option(help="an API key to show in the start-up lines (make run)")] = None,
) -> None:
    """Run the HTTP server."""
    import uvicorn

    from pixelserve.app import create_app
    from pixelserve.serving import server_config

    _logging()
    overrides = {k: v for k, v in (("engine", engine), ("ray_address", ray_address)) if v is not None}
    settings = Settings(**overrides)
    app = create_app(settings)
    app.state.listen_url, app.state.demo_key = f"http://{host}:{port}", demo_key

    class DrainingServer(uvicorn.Server):
        """On SIGTERM/SIGINT: /health/ready turns 503 at once, new connections are refused, running
        requests and background jobs get ``drain_timeout_seconds`` to finish; requests still running
        then are cancelled (their jobs failed and refunded), and the lifespan stops the engine."""

        def handle_exit(self, sig, frame) -> None:
            if not getattr(app.state, "draining", False):
                app.state.draining, app.state.drain_started = True, time.monotonic()
            super().handle_exit(sig, frame)

    config = server_config(app, settings, host, port, log_level="info")
    DrainingServer(config).run()
    # The settlements of requests cancelled at the end of the drain ran on worker threads that
    # asyncio.run waited for; close the connections they opened so the database file is complete.
    sessions = getattr(app.state, "sessions", None)
    if sessions is not None:
        from pixelserve.db.session import close_database_at_exit

        close_database_at_exit(sessions)


@cli.command()
def generate(
    prompt: str,
    model: Annotated[Optional[str], typer.Option(help="model id (default: the first configured)")] = None,
    width: int = 512, height: int = 512, steps: int = 30,
    guidance: float = 7.5,
    n: Annotated[int, typer.Option("--n", "-n", help="number of images")] = 1,
    seed: Annotated[Optional[list[int]], typer.Option(help="one per image")] = None,
    scheduler: Optional[str] = None,
    negative: Optional[str] = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("."),
    fmt: Annotated[str, typer.Option("--format")] = "png",
) -> None:
    """Generate images once, without a server, and write them as files."""
    from tqdm import tqdm

    from pixelserve.core.images import encode_image
    from pixelserve.core.request import GenerationRequest
    from pixelserve.core.validate import validate
    from pixelserve.engine.runners.local import LocalEngine
    from pixelserve.errors import PixelserveError

    settings = Settings()
    specs = settings.models.models
    model = model or next(iter(specs))
    req = GenerationRequest(model=model, prompt=prompt, negative_prompt=negative, width=width, height=height,
                            num_images=n, seeds=tuple(seed) if seed else None, steps=steps,
                            guidance_scale=guidance, scheduler=scheduler)

    async def run():
        engine = LocalEngine({model: specs[model]} if model in specs else specs, settings.cache_dir,
                             devices=settings.devices)
        checked = validate(req, engine.models())
        await engine.start()
        await engine.wait_ready()
        bar = tqdm(total=steps, desc=f"{model}", unit="step")

        def progress(step: int, total: int) -> None:
            bar.total = total
            bar.n = step
            bar.refresh()

        try:
            return await engine.submit("cli", checked, progress)
        finally:
            bar.close()
            await engine.stop()

    try:
        result = asyncio.run(run())
    except PixelserveError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    out.mkdir(parents=True, exist_ok=True)
    for image, s in zip(result.images, result.seeds):
        path = out / f"{model}-{s}.{fmt}"
        path.write_bytes(encode_image(image, fmt))
        typer.echo(str(path))
    typer.echo(f"{len(result.images)} image(s) in {result.timings_ms['run']:.0f} ms", err=True)


def _sessions():
    from pixelserve.db.session import open_database

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_database(settings.db_url)


@keys.command("create")
def keys_create(name: Annotated[str, typer.Option(help="who or what the key is for")]) -> None:
    """Create a key; the key itself is printed alone on the last line, once."""
    from pixelserve.db.crud.keys import create_key

    with _sessions()() as s:
        info, key = create_key(s, name, Settings().api_key_hmac_secret())
    typer.echo(f"created key {info.id} ({info.name}); it is shown only now:")
    typer.echo(key)


@keys.command("list")
def keys_list() -> None:
    from pixelserve.db.crud.keys import list_keys

    with _sessions()() as s:
        rows = list_keys(s)
    for k in rows:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        typer.echo(f"{k.id}\t{k.prefix}…\t{k.name}\t{state}\tcreated {k.created_at:%Y-%m-%d %H:%M}")


@keys.command("quota")
def keys_quota(
    key_id: int,
    per_minute: Annotated[Optional[int], typer.Option(min=0, help="0: unlimited; unset: server default")] = None,
    per_day: Annotated[Optional[int], typer.Option(min=0)] = None,
    per_month: Annotated[Optional[int], typer.Option(min=0)] = None,
) -> None:
    """Set a key's request quotas (options left out fall back to the server defaults)."""
    from pixelserve.db.crud.quotas import set_limits, usage

    with _sessions()() as s:
        if not set_limits(s, key_id, per_minute=per_minute, per_day=per_day, per_month=per_month):
            typer.echo(f"no key {key_id}", err=True)
            raise typer.Exit(1)
        used = usage(s, key_id)
    fmt = lambda v: "default" if v is None else ("unlimited" if v == 0 else str(v))  # noqa: E731
    typer.echo(f"key {key_id}: per minute {fmt(per_minute)}, per day {fmt(per_day)}, per month {fmt(per_month)}; "
               f"used {used['minute']}/{used['day']}/{used['month']}")


@keys.command("revoke")
def keys_revoke(key_id: int) -> None:
    from pixelserve.db.crud.keys import revoke_key

    with _sessions()() as s:
        ok = revoke_key(s, key_id)
    if not ok:
        typer.echo(f"no active key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked key {key_id}")


@models.command("list")
def models_list() -> None:
    from pixelserve.dialects.karlo import config as karlo_config

    settings = Settings()
    cfg = settings.models
    versions = {mid: v for v, mid in karlo_config.load(cfg).models.items()}
    for m in cfg.models.values():
        where = str(m.path) if m.path else "tiny random-weight demo model (draws noise)"
        extra = f"\tkarlo {versions[m.id]}" if m.id in versions else ""
        typer.echo(f"{m.id}\t{m.family}\t{where}{extra}")


credits = typer.Typer(help="Studio credits (per API key).", no_args_is_help=True)
cli.add_typer(credits, name="credits")


def _credit_service():
    from pixelserve.service.credits import CreditService

    return CreditService.from_settings(_sessions(), Settings())


@credits.command("show")
def credits_show(key_id: int) -> None:
    """The key's three balances (resets applied) and its latest ledger rows."""
    from pixelserve.db.crud.credits import entries

    svc = _credit_service()
    b = svc.balances(key_id)
    typer.echo(f"key {key_id}: default {b.default}, daily {b.daily}, monthly {b.monthly}")
    with svc.sessions() as s:
        for e in entries(s, key_id, limit=20):
            typer.echo(f"{e.created_at:%Y-%m-%d %H:%M}\t{e.kind}\tdefault {e.default_delta:+d}\t"
                       f"daily {e.daily_delta:+d}\tmonthly {e.monthly_delta:+d}\t{e.job_id or ''}\t{e.note or ''}")


# "-35" is the amount, not an option: Click takes any word starting with "-" for one otherwise.
@credits.command("grant", context_settings={"ignore_unknown_options": True})
def credits_grant(
    key_id: int,
    amount: Annotated[int, typer.Argument(help="credits to add (negative: remove)")],
    bucket: Annotated[str, typer.Option(help="default | daily | monthly")] = "default",
    note: Annotated[Optional[str], typer.Option(help="recorded on the ledger row")] = None,
) -> None:
    """Grant credits to a key (a ledger row of kind grant)."""
    if bucket not in ("default", "daily", "monthly"):
        typer.echo("bucket must be default, daily or monthly", err=True)
        raise typer.Exit(2)
    try:
        b = _credit_service().grant(key_id, amount, bucket, note)
    except ValueError as e:
        typer.echo(f"not granted: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"key {key_id}: default {b.default}, daily {b.daily}, monthly {b.monthly}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
