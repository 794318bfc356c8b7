"""``tradeguard responder``: run the responder until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from tradeguard.errors import TradeguardError
from tradeguard.responder.cli.common import (
    _fail,
    _out,
)


def responder_command(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (0: any free one).")] = None,
    history_url: Annotated[
        str | None,
        typer.Option(
            help="sqlite:///<path> (default) or postgresql://... (a password: leave it to "
            "~/.pgpass, or give the URL by --history-url-file)"
        ),
    ] = None,
    history_url_file: Annotated[
        Path | None,
        typer.Option(help="File holding the history URL (a Docker secret, a 0600 file)."),
    ] = None,
    jsonl_path: Annotated[
        Path | None, typer.Option(help="Also append each notification to this JSONL file.")
    ] = None,
    apprise_urls_file: Annotated[
        Path | None,
        typer.Option(help="File of apprise URLs (one a line) to notify: Slack, e-mail, ..."),
    ] = None,
    pagerduty_routing_key_file: Annotated[
        Path | None,
        typer.Option(help="File holding a PagerDuty Events API v2 routing key: page criticals."),
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="File holding the bearer token Alertmanager sends.")
    ] = None,
    basic_user: Annotated[str | None, typer.Option(help="Basic-auth user name.")] = None,
    basic_password_file: Annotated[
        Path | None, typer.Option(help="File holding the basic-auth password.")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Largest webhook body accepted (bytes).")
    ] = None,
    console_output: Annotated[
        bool | None,
        typer.Option("--console/--no-console", help="Print each notification on stdout."),
    ] = None,
    roster_file: Annotated[
        Path | None,
        typer.Option(
            help="The on-call roster (YAML: shifts, rotations, overrides): the report's fatigue "
            "index names the operator on call for each alert. Re-read when it changes."
        ),
    ] = None,
    watchdog_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds without a Watchdog alert before the responder reports the alert path "
            "broken through its own channels (default 120; 0 turns the dead man's switch off)."
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Accept requests without credentials.")
    ] = False,
) -> None:
    """Run the alert responder (Alertmanager webhook receiver) until SIGINT/SIGTERM.

    Settings not given here come from TRADEGUARD_RESPONDER_* environment variables.
    """
    from tradeguard.responder.service import ResponderServer, load_responder_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = load_responder_settings(
            host=host,
            port=port,
            history_url=history_url,
            history_url_file=history_url_file,
            jsonl_path=jsonl_path,
            apprise_urls_file=apprise_urls_file,
            pagerduty_routing_key_file=pagerduty_routing_key_file,
            token_file=token_file,
            basic_user=basic_user,
            basic_password_file=basic_password_file,
            max_body_bytes=max_body_bytes,
            console=console_output,
            watchdog_timeout_seconds=watchdog_timeout,
            roster_file=roster_file,
            insecure=insecure or None,
        )
        server = ResponderServer(settings)
    except TradeguardError as exc:
        raise _fail(str(exc), code=2) from None
    stop = _stop_event()
    try:
        server.start()
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    _out().print(
        f"responder: webhook at {server.webhook_url}, history in {server.history!r}", markup=False
    )
    stop.wait()
    server.stop()
    _out().print("responder stopped")


def _stop_event() -> threading.Event:
    """An event set by SIGINT or SIGTERM, installed before the server starts."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop
