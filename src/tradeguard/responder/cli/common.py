"""What every ``tradeguard alerts`` command shares: the Typer group, the responder's address
and token options, one client per command, and failures as one red line and an exit code."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from tradeguard.net import LOOPBACK
from tradeguard.redact import redact_url
from tradeguard.responder.client import ResponderClient, ResponderUnavailable
from tradeguard.responder.operations import (
    MalformedRecord,
)

DEFAULT_URL = f"http://{LOOPBACK}:9466"
MAX_SUMMARY_HOURS = 90 * 24  # the report's longest window

alerts_app = typer.Typer(
    help="Query the alert responder: what is firing, what happened, who took it, how it went.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
_T = TypeVar("_T")
# Piped output (a script, grep) gets wide lines instead of rich's 80-column default, so names
# are never cut; a terminal, or an explicit COLUMNS, keeps its own width.
PIPED_WIDTH = 200


def _out() -> Console:
    console = Console()
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(width=PIPED_WIDTH)


UrlOpt = Annotated[
    str,
    typer.Option("--url", envvar="TRADEGUARD_RESPONDER_URL", help="The responder's base URL."),
]
TokenFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar="TRADEGUARD_RESPONDER_TOKEN_FILE",
        help="File holding the bearer token (else TRADEGUARD_RESPONDER_TOKEN).",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="TRADEGUARD_RESPONDER_TOKEN",
        help="Bearer token (prefer --token-file or the environment: ps shows arguments).",
        show_envvar=True,
    ),
]
DaysOpt = Annotated[int, typer.Option(min=1, max=90, help="How many days back.")]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to wait for the responder.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    """One ``error:`` line, never wrapped (a script greps it; a terminal folds it anyway)."""
    err.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)
    return typer.Exit(code)


def _token(token: str | None, token_file: Path | None) -> str | None:
    if token_file is not None:
        try:
            return token_file.read_text().strip() or None
        except OSError as exc:
            raise ResponderUnavailable(
                f"cannot read token file {token_file}: {exc.strerror or exc}"
            ) from None
    return token.strip() if token else None


def _client(
    url: str, token: str | None, token_file: Path | None, timeout: float
) -> ResponderClient:
    """The client for one command; ResponderUnavailable if the token file cannot be read."""
    return ResponderClient(url, _token(token, token_file), token_file=token_file, timeout=timeout)


def _ask(
    url: str,
    token: str | None,
    token_file: Path | None,
    timeout: float,
    call: Callable[[ResponderClient], _T],
    code: int = 1,
) -> _T:
    """One request of a command (or several, made by ``call`` over one client); a responder
    that cannot answer, or answers records of another shape, ends it with one error line and
    exit ``code``."""
    try:
        with _client(url, token, token_file, timeout) as client:
            return call(client)
    except ResponderUnavailable as exc:
        raise _fail(str(exc), code) from None
    except MalformedRecord as exc:
        raise _fail(
            f"the responder at {redact_url(url)} answered an unexpected record: {exc}", code
        ) from None


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")


_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
