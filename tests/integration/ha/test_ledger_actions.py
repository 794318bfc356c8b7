"""The ledger's fenced actions on both dialects: the epoch travels with the ticket, a completion
applies its fill once however often it is repeated and in whichever term, an unknown outcome is
a state of its own, and ``close`` flattens the position.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tradeguard.fencing import FenceLost, Fill, Intent
from tradeguard.ha.ledger import Ledger, open_ledger
from tradeguard.process import wait_until

TTL = 0.3  # short leases, so a test can let one run out


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    ledger = open_ledger(ledger_url, timeout=5.0)
    ledger.setup()
    try:
        yield ledger
    finally:
        ledger.close()


def lead(ledger: Ledger, replica: str, ttl: float = 30.0) -> int:
    """Take the lead for ``replica`` once the current lease has run out; its epoch."""
    found: list[int] = []

    def acquired() -> bool:
        record = ledger.read()
        epoch = ledger.try_acquire(replica, f"{replica}-token", record.epoch, ttl)
        if epoch is not None:
            found.append(epoch)
        return epoch is not None

    wait_until(acquired, 10, f"{replica} to take the lead")
    return found[0]


def volume(ledger: Ledger, account: str, symbol: str) -> float | None:
    rows = {(r[0], r[1]): float(r[2]) for r in ledger.positions()}
    return rows.get((account, symbol))


def test_a_completion_applies_its_fill_once_in_its_own_term(ledger: Ledger) -> None:
    epoch = lead(ledger, "r1")
    ticket = ledger.begin_action("s1", "r1", epoch)
    assert (ticket.intent, ticket.epoch) == (Intent.NEW, epoch)
    fill = Fill("acct", "EURUSD", "buy", 2.0, 1.1)
    assert ledger.complete_action("s1", "r1", ticket.epoch, "filled", b'{"r":1}', fill)
    assert not ledger.complete_action("s1", "r1", ticket.epoch, "filled", b'{"r":1}', fill)
    assert volume(ledger, "acct", "EURUSD") == 2.0
    again = ledger.begin_action("s1", "r1", epoch)
    assert (again.intent, again.recorded) == (Intent.DONE, b'{"r":1}')


def test_an_action_completed_in_two_terms_applies_its_fill_once(ledger: Ledger) -> None:
    """r1 records the intent and stalls; its lease runs out; r2 takes over the open intent and
    completes it; r1 wakes up and completes with the epoch its ticket carries: refused."""
    first = lead(ledger, "r1", ttl=TTL)
    stale = ledger.begin_action("s2", "r1", first)
    assert stale.intent is Intent.NEW
    ledger.mark_unknown("s2", "r1", first)
    assert ledger.actions()["s2"][0] == "unknown"
    assert ledger.open_actions() == {"s2": ("unknown", first)}

    second = lead(ledger, "r2")
    assert second == first + 1
    taken = ledger.begin_action("s2", "r2", second)
    assert (taken.intent, taken.epoch) == (Intent.OPEN, second)
    fill = Fill("acct", "XAUUSD", "sell", 1.5, 2000.0)
    assert ledger.complete_action("s2", "r2", taken.epoch, "filled", b"{}", fill)

    with pytest.raises(FenceLost):
        ledger.complete_action("s2", "r1", stale.epoch, "filled", b"{}", fill)
    with pytest.raises(FenceLost):  # not even under the new epoch: r1 does not hold it
        ledger.complete_action("s2", "r1", second, "filled", b"{}", fill)
    assert not ledger.complete_action("s2", "r2", taken.epoch, "filled", b"{}", fill)
    assert volume(ledger, "acct", "XAUUSD") == -1.5
    assert ledger.actions()["s2"] == ("done", "filled", second)
    assert ledger.open_actions() == {}


def test_close_flattens_the_ledger_position(ledger: Ledger) -> None:
    epoch = lead(ledger, "r1")
    for sid, action, vol in (("b", "buy", 3.0), ("s", "sell", 1.0), ("c", "close", 0.25)):
        ticket = ledger.begin_action(sid, "r1", epoch)
        fill = Fill("acct", "GBPUSD", action, vol, 1.25)
        assert ledger.complete_action(sid, "r1", ticket.epoch, "filled", b"{}", fill)
        if action != "close":
            assert volume(ledger, "acct", "GBPUSD") is not None
    assert volume(ledger, "acct", "GBPUSD") is None  # flat: the row is gone


def test_a_ledger_from_before_results_were_kept_gains_the_column(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url, timeout=5.0)
    try:
        ledger.setup()
        ledger.execute_raw("ALTER TABLE actions DROP COLUMN result")
        ledger.setup()  # what a new version does at start-up
        epoch = lead(ledger, "r1")
        ticket = ledger.begin_action("m", "r1", epoch)
        assert ledger.complete_action("m", "r1", ticket.epoch, "rejected", b"{}", None)
    finally:
        ledger.close()
