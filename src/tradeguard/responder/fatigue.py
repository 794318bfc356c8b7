"""The alert fatigue index: alerts per operator per shift (seed 003), by the on-call roster.

Each occurrence counts against the operator on call when the responder first received it
firing. An operator's index is their alerts divided by the shifts they were on call for in the
window, quiet ones included: a person woken five times in one night of a quiet week is shown
by their busiest shift, which the mean alone would hide. Alerts that arrived when the roster
names nobody (a gap between shifts, a date before the first rotation) are counted apart, as
alerts nobody was on call for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from tradeguard.responder.history.base import Occurrence
from tradeguard.responder.roster import Roster, ShiftSlot


@dataclass(frozen=True)
class OperatorFatigue:
    operator: str
    shifts: int  # shifts on call in the window (those with no alert too)
    alerts: int
    critical: int
    acknowledged: int  # of their alerts, acknowledged by anyone
    busiest_shift: str | None  # "12-01 night"; None when no alert
    busiest_alerts: int

    @property
    def per_shift(self) -> float:
        return self.alerts / self.shifts if self.shifts else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "operator": self.operator,
            "shifts": self.shifts,
            "alerts": self.alerts,
            "alerts_per_shift": self.per_shift,
            "critical": self.critical,
            "acknowledged": self.acknowledged,
            "busiest_shift": self.busiest_shift,
            "busiest_shift_alerts": self.busiest_alerts,
        }


@dataclass(frozen=True)
class ShiftLoad:
    """One shift of the window and the alerts it took (the per-shift chart)."""

    label: str
    operator: str | None
    alerts: int


@dataclass(frozen=True)
class FatigueIndex:
    roster: bool  # False: no roster configured, so no operator is named
    operators: list[OperatorFatigue] = field(default_factory=list)  # most tired first
    nobody_on_call: int = 0  # alerts that arrived when the roster named nobody
    shifts: list[ShiftLoad] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "roster": self.roster,
            "operators": [o.to_json() for o in self.operators],
            "nobody_on_call": self.nobody_on_call if self.roster else None,
        }


def fatigue_index(
    window: list[Occurrence], roster: Roster, since: datetime, until: datetime
) -> FatigueIndex:
    """The index over ``window`` (occurrences first notified in ``[since, until]``)."""
    slots = roster.slots(since, until)
    alerts: dict[ShiftSlot, list[Occurrence]] = {slot: [] for slot in slots}
    nobody = 0
    for o in window:
        slot = roster.slot_at(o.notified_at)
        if slot is None or slot.operator is None:
            nobody += 1
        if slot is not None:
            alerts.setdefault(slot, []).append(o)
    per_operator: dict[str, list[ShiftSlot]] = {}
    for slot in alerts:
        if slot.operator is not None:
            per_operator.setdefault(slot.operator, []).append(slot)
    operators = [_operator(name, worked, alerts) for name, worked in per_operator.items()]
    operators.sort(key=lambda o: (-o.per_shift, -o.busiest_alerts, o.operator))
    loads = [ShiftLoad(s.label, s.operator, len(alerts[s])) for s in sorted(alerts)]
    return FatigueIndex(roster.has_operators, operators, nobody, loads)


def _operator(
    name: str, worked: list[ShiftSlot], alerts: dict[ShiftSlot, list[Occurrence]]
) -> OperatorFatigue:
    theirs = [o for slot in worked for o in alerts[slot]]
    counts = Counter({slot: len(alerts[slot]) for slot in worked})
    busiest, most = max(counts.items(), key=lambda item: (item[1], item[0]))
    return OperatorFatigue(
        operator=name,
        shifts=len(worked),
        alerts=len(theirs),
        critical=sum(1 for o in theirs if o.severity == "critical"),
        acknowledged=sum(1 for o in theirs if o.ack is not None),
        busiest_shift=busiest.label if most else None,
        busiest_alerts=most,
    )
