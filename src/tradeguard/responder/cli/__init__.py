"""Command-line pieces of the responder: ``tradeguard responder`` and ``tradeguard alerts ...``.

The top-level CLI mounts them (``app.command("responder")(responder_command)`` and
``app.add_typer(alerts_app, name="alerts")``); this module does not import it, so the
responder stays below the CLI in the dependency order. ``python -m tradeguard.responder.cli``
runs the ``alerts`` commands on their own.

The query commands talk to a running responder over its HTTP API rather than opening the
history store, so they work against a PostgreSQL-backed or remote responder alike and need only
the token; they read it through :class:`~tradeguard.responder.client.ResponderClient`, whose
failures are one line each. Every failure is one red line and a non-zero exit, never a traceback.
"""

from importlib import import_module

from tradeguard.responder.cli.common import alerts_app
from tradeguard.responder.cli.serve import responder_command

# Each module registers its commands on alerts_app when imported; `--help` lists them in this
# order: the records first, then the report, then the daily and weekly operations.
for _module in ("records", "report", "operations"):
    import_module(f"{__name__}.{_module}")

__all__ = ["alerts_app", "responder_command"]
