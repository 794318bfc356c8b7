"""``python -m tradeguard.responder.cli``: the ``alerts`` commands on their own."""

from tradeguard.responder.cli import alerts_app

alerts_app()
