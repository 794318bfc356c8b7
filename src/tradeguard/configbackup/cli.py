"""``tradeguard config backup`` and ``tradeguard config restore``.

Mounted on the main CLI as ``app.add_typer(config_app, name="config")``; also runnable on its
own (``python -m tradeguard.configbackup.cli``). Every failure is one ``error:`` line on stderr
and exit code 1, never a traceback.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from tradeguard.configbackup.errors import InvalidConfiguration
from tradeguard.errors import TradeguardError
from tradeguard.stack import DEFAULT_RUN_DIR

config_app = typer.Typer(
    help="Back up the monitoring configuration (Prometheus rules and config, Alertmanager "
    "routing, Grafana dashboards, the alert inventory) and restore it, verified and validated, "
    "into deploy/ and a running local stack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
DEFAULT_OUT = Path("backups")

DeployOpt = Annotated[
    Path | None,
    typer.Option(
        "--deploy-dir",
        help="The deploy/ directory (default: deploy/ of the repository around the current "
        "directory).",
    ),
]


def _fail(message: str, details: str = "", code: int = 1) -> typer.Exit:
    """``message`` as one ``error:`` line (never wrapped, never read as markup); ``details``
    (a tool's output) indented below it."""
    err.print(Text("error: ", style="red") + Text(message), soft_wrap=True)
    for line in details.splitlines():
        err.print(Text(f"  {line}"), soft_wrap=True, highlight=False)
    return typer.Exit(code)


def _say(message: str) -> None:
    typer.echo(message)


def _deploy_dir(given: Path | None) -> Path:
    if given is not None:
        return given
    from tradeguard.stack.stack import repo_deploy_dir

    return repo_deploy_dir()


def _kib(size: int) -> str:
    return f"{size / 1024:.1f} KiB"


@config_app.command("backup")
def backup(
    deploy_dir: DeployOpt = None,
    settings: Annotated[
        Path | None,
        typer.Option("--settings", help="A settings TOML file to keep in the archive as well."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Directory the archive is written to (created).")
    ] = DEFAULT_OUT,
    include_secrets: Annotated[
        bool,
        typer.Option(
            "--include-secrets",
            help="Also keep secrets: files under a secrets/ directory and files named like a "
            "token, password, key or .env. The archive is then readable by its owner only; "
            "store it as you store the secrets.",
        ),
    ] = False,
    keep_days: Annotated[
        float,
        typer.Option(
            "--keep-days",
            min=0,
            help="After a successful backup, delete archives in --out whose name says they "
            "are older than this many days (only files named tradeguard-config-<time>.tar.gz).",
        ),
    ] = 30,
) -> None:
    """Write a dated archive of the monitoring configuration.

    The archive, tradeguard-config-<UTC time>.tar.gz, holds a MANIFEST.json of every file's
    size and SHA-256. Take one before changing alert rules or routing: `tradeguard config
    restore` brings it back if the change goes wrong. Secrets are left out unless
    --include-secrets, and the output names them.
    """
    from tradeguard.configbackup.archive import create_backup
    from tradeguard.configbackup.retention import prune

    try:
        deploy = _deploy_dir(deploy_dir)
        if not (deploy / "prometheus" / "prometheus.yml").is_file():
            raise _fail(f"{deploy} is not a deploy dir: it has no prometheus/prometheus.yml")
        result = create_backup(deploy, out, settings=settings, include_secrets=include_secrets)
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    files = len(result.manifest.files)
    _say(f"wrote {result.path} ({files} files, {_kib(result.total_bytes)} of configuration)")
    if result.secrets_left_out:
        _say(
            f"left out {len(result.secrets_left_out)} secret file(s) (--include-secrets keeps "
            f"them): {', '.join(result.secrets_left_out)}"
        )
    elif include_secrets:
        _say("secrets included: keep this archive as private as the secrets themselves")
    pruned = prune(out, keep_days, datetime.now(UTC), keep=result.path)
    if pruned.deleted:
        names = ", ".join(p.name for p in pruned.deleted)
        _say(f"deleted {len(pruned.deleted)} archive(s) older than {keep_days:g} days: {names}")
    for path, reason in pruned.failed:
        err.print(Text(f"warning: could not delete old archive {path}: {reason}"), soft_wrap=True)


@config_app.command("restore")
def restore(
    archive: Annotated[
        Path, typer.Argument(help="The archive to restore (tradeguard-config-<time>.tar.gz).")
    ],
    deploy_dir: DeployOpt = None,
    settings: Annotated[
        Path | None,
        typer.Option(
            "--settings",
            help="Where to restore the archive's settings TOML (left alone when not given).",
        ),
    ] = None,
    run_dir: Annotated[
        Path,
        typer.Option(
            "--run-dir",
            help="Run directory of the local stack to reload after the restore, if one runs.",
        ),
    ] = DEFAULT_RUN_DIR,
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Where the backup of the current configuration is written first."
        ),
    ] = DEFAULT_OUT,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Verify, validate and show what would change; change nothing."
        ),
    ] = False,
) -> None:
    """Restore a configuration archive into deploy/ and reload a running local stack.

    Nothing changes unless all of this holds first: the archive is intact (a readable tar.gz
    whose files match MANIFEST.json's sizes and SHA-256, with no extra, linked or escaping
    member) and its configuration passes promtool check config/rules, promtool test rules and
    amtool check-config. Then the current configuration is backed up to --out (printed: restore
    it to undo), each file is replaced whole, configuration files the archive lacks are
    removed, and a local stack running from --run-dir re-renders its configuration and reloads
    Prometheus and Alertmanager, confirmed by their reload metrics and Prometheus's rule list.
    """
    from tradeguard.configbackup.replace import Plan
    from tradeguard.configbackup.restore import RestoreRequest
    from tradeguard.configbackup.restore import restore as run_restore
    from tradeguard.stack.layout import StackLayout

    if not (yes or dry_run or sys.stdin.isatty()):
        raise _fail(
            "refusing to restore without --yes: this is not an interactive terminal, so there "
            "is no one to confirm (nothing changed; --dry-run shows what would change)"
        )

    def confirm(plan: Plan, layout: StackLayout | None) -> bool:
        if yes:
            return True
        action = "replace these files" if not plan.empty else "keep the files as they are"
        then = " and reload the running stack" if layout is not None else ""
        return typer.confirm(f"{action}{then}?", default=False)

    try:
        request = RestoreRequest(
            archive=archive,
            deploy=_deploy_dir(deploy_dir),
            backup_dir=out,
            run_dir=run_dir,
            settings=settings,
            dry_run=dry_run,
        )
        run_restore(request, confirm, _say)
    except InvalidConfiguration as exc:
        raise _fail(f"{exc}; nothing changed", exc.details) from None
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from None


if __name__ == "__main__":
    config_app()
