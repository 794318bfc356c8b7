"""Who is on call when: the on-call roster the fatigue index attributes alerts by.

Seed 003's alert fatigue index is "alerts per operator per shift". To count it, each alert
occurrence is attributed to the operator on call when the responder first received it firing
(when a person could first be woken by it), and each operator's alerts are divided by the
shifts they were on call for in the window, quiet shifts included.

The roster is a YAML file (``TRADEGUARD_RESPONDER_ROSTER_FILE``)::

    timezone: Europe/London          # shifts are in this zone's local time (default UTC)
    shifts:                          # may run past midnight; may not overlap; gaps allowed
      - {name: day, start: "08:00", end: "20:00"}
      - {name: night, start: "20:00", end: "08:00"}
    rotations:
      - from: 2026-11-30             # in force from this date until the next one's `from`
        length_days: 7               # each operator in the list covers this many days in turn
        on_call:
          day: [alice, bob]
          night: [carol]
    overrides:                       # swaps and holidays, one shift of one date
      - {date: 2026-12-25, shift: day, operator: erin}

A change of rota is a new rotation with a later ``from``, not an edit of the old one: the
report attributes the past by the rotation that was in force then, so last month's figures do
not move when next week's rota is written. A shift is named by the local date it starts on.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tradeguard.errors import ConfigError

# Without a roster, shifts are the report's three 8-hour shifts of the UTC day, nobody on call.
DEFAULT_SHIFTS = (
    ("00-08", "00:00", "08:00"),
    ("08-16", "08:00", "16:00"),
    ("16-24", "16:00", "00:00"),
)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@ -]{0,63}$"
MAX_ROSTER_BYTES = 1024 * 1024

log = logging.getLogger(__name__)


def _clock(text: str) -> time:
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"{text!r} is not a time of day HH:MM") from None


class ShiftSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    start: str
    end: str

    @model_validator(mode="after")
    def _times(self) -> Self:
        if _clock(self.start) == _clock(self.end):
            raise ValueError(f"shift {self.name}: start and end are equal ({self.start})")
        return self

    def minutes(self) -> tuple[int, int]:
        """Start and end as minutes from the local midnight of the shift's date; the end is
        past 1440 for a shift that runs past midnight."""
        start, end = _clock(self.start), _clock(self.end)
        first = start.hour * 60 + start.minute
        last = end.hour * 60 + end.minute
        return first, last if last > first else last + 24 * 60


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    starts: date = Field(alias="from")
    length_days: int = Field(default=7, ge=1, le=366)
    on_call: dict[str, list[Annotated[str, Field(pattern=NAME_PATTERN)]]]

    def operator(self, shift: str, day: date) -> str | None:
        people = self.on_call.get(shift) or []
        if not people:
            return None
        turn = (day - self.starts).days // self.length_days
        return people[turn % len(people)]


class Override(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    date: date
    shift: str
    operator: str = Field(pattern=NAME_PATTERN)


class RosterFile(BaseModel):
    """The file's shape, checked whole so every mistake is reported at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    shifts: list[ShiftSpec] = Field(min_length=1, max_length=24)
    rotations: list[Rotation] = Field(default_factory=list)
    overrides: list[Override] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [s.name for s in self.shifts]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"shift names must be unique: {', '.join(doubled)}")
        _check_no_overlap(self.shifts)
        known = set(names)
        for rotation in self.rotations:
            unknown = sorted(set(rotation.on_call) - known)
            if unknown:
                raise ValueError(
                    f"rotation from {rotation.starts}: unknown shift {', '.join(unknown)} "
                    f"(the shifts are {', '.join(names)})"
                )
        starts = [r.starts for r in self.rotations]
        if len(set(starts)) != len(starts):
            raise ValueError("two rotations start on the same date")
        seen: set[tuple[date, str]] = set()
        for o in self.overrides:
            if o.shift not in known:
                raise ValueError(f"override on {o.date}: unknown shift {o.shift}")
            if (o.date, o.shift) in seen:
                raise ValueError(f"two overrides for shift {o.shift} on {o.date}")
            seen.add((o.date, o.shift))
        return self


def _check_no_overlap(shifts: list[ShiftSpec]) -> None:
    """Two shifts covering one minute would make an alert's operator ambiguous."""
    covered: dict[int, str] = {}
    for shift in shifts:
        first, last = shift.minutes()
        for minute in range(first, last):
            owner = covered.setdefault(minute % (24 * 60), shift.name)
            if owner != shift.name:
                raise ValueError(f"shifts {owner} and {shift.name} overlap")


@dataclass(frozen=True, order=True)
class ShiftSlot:
    """One shift of one date: the unit the fatigue index divides by."""

    start: datetime  # UTC
    end: datetime  # UTC
    name: str
    day: date  # the local date it starts on
    operator: str | None  # None: nobody on call

    @property
    def label(self) -> str:
        return f"{self.day:%m-%d} {self.name}"


class Roster:
    """Shifts and who covers them; answers "which shift, and who" for any moment."""

    def __init__(self, spec: RosterFile) -> None:
        try:
            self.zone = ZoneInfo(spec.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"roster: unknown time zone {spec.timezone!r}") from None
        self.spec = spec
        self.rotations = sorted(spec.rotations, key=lambda r: r.starts)
        self.overrides = {(o.date, o.shift): o.operator for o in spec.overrides}

    @property
    def has_operators(self) -> bool:
        return bool(self.rotations or self.overrides)

    @classmethod
    def default(cls) -> Roster:
        """The report's three 8-hour UTC shifts, nobody on call."""
        shifts = [ShiftSpec(name=n, start=s, end=e) for n, s, e in DEFAULT_SHIFTS]
        return cls(RosterFile(shifts=shifts))

    def operator(self, shift: str, day: date) -> str | None:
        if (day, shift) in self.overrides:
            return self.overrides[(day, shift)]
        current = None
        for rotation in self.rotations:
            if rotation.starts <= day:
                current = rotation
        return current.operator(shift, day) if current is not None else None

    def _slots_of(self, day: date) -> list[ShiftSlot]:
        midnight = datetime.combine(day, time(0), self.zone)
        slots = []
        for shift in self.spec.shifts:
            first, last = shift.minutes()
            # Local wall-clock arithmetic, then to UTC: a shift across a clock change is as
            # long as the clock says, as the people working it would count it.
            start = (midnight + timedelta(minutes=first)).astimezone(UTC)
            end = (
                datetime.combine(day + timedelta(days=last // 1440), time(0), self.zone)
                + timedelta(minutes=last % 1440)
            ).astimezone(UTC)
            slots.append(ShiftSlot(start, end, shift.name, day, self.operator(shift.name, day)))
        return slots

    def slots(self, since: datetime, until: datetime) -> list[ShiftSlot]:
        """Every shift overlapping ``[since, until]``, in time order."""
        day = since.astimezone(self.zone).date() - timedelta(days=1)
        last = until.astimezone(self.zone).date()
        found: list[ShiftSlot] = []
        while day <= last:
            found.extend(s for s in self._slots_of(day) if s.start <= until and s.end > since)
            day += timedelta(days=1)
        return sorted(found)

    def on_call(self, moment: datetime) -> str | None:
        """The operator on call at ``moment``; None in a gap or before the first rotation."""
        slot = self.slot_at(moment)
        return slot.operator if slot is not None else None

    def slot_at(self, moment: datetime) -> ShiftSlot | None:
        """The shift ``moment`` falls in; None in a gap between shifts."""
        local_day = moment.astimezone(self.zone).date()
        for day in (local_day, local_day - timedelta(days=1)):
            for slot in self._slots_of(day):
                if slot.start <= moment < slot.end:
                    return slot
        return None


def parse_roster(text: str, source: str = "roster") -> Roster:
    """A roster from its YAML text; ConfigError naming every problem, never a traceback."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with shifts (and rotations)")
    try:
        spec = RosterFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'roster'}: {err['msg']}"
            for err in exc.errors(include_input=False)
        )
        raise ConfigError(f"{source}: {problems}") from None
    return Roster(spec)


def load_roster(path: Path | None) -> Roster:
    """The roster at ``path``, or the default shifts with nobody on call when None."""
    if path is None:
        return Roster.default()
    try:
        if path.stat().st_size > MAX_ROSTER_BYTES:
            raise ConfigError(f"roster {path}: larger than {MAX_ROSTER_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"roster {path}: cannot read it: {exc}") from None
    return parse_roster(text, f"roster {path}")


class RosterSource:
    """The roster file as it is now: re-read when it changes, so next week's rota needs no
    restart; a broken edit keeps the last good roster (and says so in ``problem``) rather
    than take the report down."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._roster = load_roster(path)  # at start-up a broken roster is an error
        self._stamp = self._mtime()
        self._lock = threading.Lock()  # the HTTP thread and the sender's workers ask at once
        self.problem: str | None = None

    def _mtime(self) -> float | None:
        if self.path is None:
            return None
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None

    def current(self) -> Roster:
        stamp = self._mtime()
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._roster = load_roster(self.path)
                    self.problem = None
                except ConfigError as exc:
                    self.problem = f"{exc}; still using the roster read before"
                    log.warning("%s", self.problem)
            return self._roster
