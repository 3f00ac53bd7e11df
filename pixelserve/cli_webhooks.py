"""pixelserve keys webhook | keys webhook-secret | webhooks list | webhooks retry (service/webhooks.py)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from pixelserve.settings import Settings

webhooks = typer.Typer(help="The webhook outbox: deliveries and their state.", no_args_is_help=True)


def _sessions():
    from pixelserve.db.session import open_database

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_database(settings.db_url)


def keys_webhook(key_id: int,
                 url: Annotated[str, typer.Argument(help="http(s) URL; \"\" (empty) clears it")]) -> None:
    """Set (or clear) the key's default webhook URL: its jobs report there unless a request names one."""
    from pixelserve.db.crud.webhooks import set_key_url
    from pixelserve.errors import InvalidRequest
    from pixelserve.service.webhooks import check_target, target_policy

    if url:
        try:  # the rule admission applies (PIXELSERVE_WEBHOOK_ALLOW_PRIVATE lifts the address part)
            check_target(url, target_policy(Settings().webhook_allow_private), field="url")
        except InvalidRequest as e:
            typer.echo(f"not set: {e}", err=True)
            raise typer.Exit(2) from None
    with _sessions()() as s:
        if not set_key_url(s, key_id, url or None):
            typer.echo(f"no key {key_id}", err=True)
            raise typer.Exit(1)
    typer.echo(f"key {key_id}: webhook URL {url}" if url else f"key {key_id}: no webhook URL")


def keys_webhook_secret(key_id: int, rotate: Annotated[bool, typer.Option(
        help="replace it: deliveries from now on (retries included) are signed with the new one")] = False) -> None:
    """The secret the key's webhooks are signed with (made on first use); the secret alone is printed."""
    from pixelserve.db.crud.webhooks import key_secret

    with _sessions()() as s:
        secret = key_secret(s, key_id, rotate=rotate)
    if secret is None:
        typer.echo(f"no key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(secret)


@webhooks.command("list")
def webhooks_list(
    status: Annotated[Optional[str], typer.Option(help="pending | delivered | failed")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """Deliveries, newest first: id, status, attempts, last answer, job, event, URL."""
    from pixelserve.db.crud.webhooks import listing

    if status not in (None, "pending", "delivered", "failed"):
        typer.echo("status must be pending, delivered or failed", err=True)
        raise typer.Exit(2)
    with _sessions()() as s:
        rows = listing(s, status=status, limit=limit)
    for d in rows:
        answer = d.last_error or (f"HTTP {d.last_status_code}" if d.last_status_code else "-")
        when = f"next {d.next_attempt_at:%Y-%m-%d %H:%M:%S}" if d.status == "pending" else (
            f"at {d.delivered_at:%Y-%m-%d %H:%M:%S}" if d.delivered_at else "")
        typer.echo(f"{d.id}\t{d.status}\tattempts {d.attempts}\t{answer}\t{when}\tjob {d.job_id}\t{d.event_type}\t{d.url}")


@webhooks.command("retry")
def webhooks_retry(delivery_id: str) -> None:
    """Send a delivery again now (a failed one too): a running server picks it up within seconds."""
    from pixelserve.db.crud.webhooks import retry

    with _sessions()() as s:
        if not retry(s, delivery_id):
            typer.echo(f"no delivery {delivery_id}", err=True)
            raise typer.Exit(1)
    typer.echo(f"delivery {delivery_id}: pending, due now")


def register(keys: typer.Typer, cli: typer.Typer) -> None:
    keys.command("webhook")(keys_webhook)
    keys.command("webhook-secret")(keys_webhook_secret)
    cli.add_typer(webhooks, name="webhooks")
