"""Poison entries never stop trading: arbitrary stream entries thrown at one live engine.

The engine promises that nothing a producer writes to ``tg:signals`` can end its thread: an
invalid entry is dead-lettered at once with its validation reason, an entry whose handling
raises is retried and dead-lettered as ``poison`` after ``poison_deliveries`` deliveries, and
trading goes on. Example-based tests only cover the inputs someone thought of, so this module
lets hypothesis build the entries: random field names and values as bytes, and ``signal``
payloads from JSON of any shape (deep nesting, 1e308, -0.0, NaN/Infinity tokens, 2**70 and
2**1100 integers, a wrong type in each known field, unicode and lone surrogates, very long
strings, missing and extra fields, valid-looking signals with bad identifiers).

Some valid signals carry an id the engine raises on at every delivery (the test patches the
engine's ``before_intent`` checkpoint with engine_crash_hook's ``poison`` mode): a bug one
entry's content triggers, so the poison path runs too.

All of them go to ONE engine started once for the whole run (a fresh engine per example
would hide state one entry leaves behind for the next). Afterwards it must hold that every
worker thread lives, a valid signal published after the storm is executed, the group has
nothing left pending, and each entry ended as it should: an invalid one in the dead letters
with the reason the validator gives it (the validator is the oracle for *which* reason; what
is tested is that the engine gets there and lives), a hooked one as ``poison`` after no fewer
than ``poison_deliveries`` deliveries, any other valid one executed (a result for its signal
id) or dead-lettered as expired.

Two example-based tests pin inputs the validator itself must refuse: a price or volume of
1e300 (finite, but out of range), and identifiers with a trailing newline.
"""

from __future__ import annotations

import json
import math
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from engine_crash_hook import crashing_checkpoint
from hypothesis import HealthCheck, Phase, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis import Redis

from tradeguard.bus import Keys, Signal, SignalStream
from tradeguard.bus.connection import make_client
from tradeguard.bus.results import RESULT_FIELD
from tradeguard.bus.signals import SIGNAL_FIELD, InvalidSignal, decode_signal
from tradeguard.config import Settings
from tradeguard.engine.loop import Engine
from tradeguard.engine.paper import BrokerKnobs, PaperBroker
from tradeguard.engine.service import EngineOptions, EngineService
from tradeguard.metrics.vocabulary import ACTIONS
from tradeguard.process import wait_until

GROUP = "engine"
KNOWN_FIELDS = (
    "account",
    "symbol",
    "action",
    "volume",
    "price",
    "signal_id",
    "created_at",
    "strategy",
)
MAX_EXAMPLES = 150
SETTLE_SECONDS = 30.0  # poison entries need poison_deliveries x reclaim_idle (1 s) to settle
# Signals whose id starts with this make the engine raise while handling them (its checkpoint,
# patched with engine_crash_hook's poison mode): a bug one entry's content triggers.
POISON_PREFIX = "poison-hook-"

# ---- strategies -------------------------------------------------------------------------------

SPECIAL_NUMBERS: list[Any] = [
    1e308,
    -1e308,
    1e300,
    -0.0,
    0,
    -1,
    5e-324,
    1e12,
    1e12 + 1,
    math.nan,
    math.inf,
    -math.inf,
    2**63,
    2**70,
    -(2**70),
    2**1100,  # too large for a float: float() raises OverflowError
]
# Spelled as JSON tokens: NaN/Infinity are Python's extensions, 1e400 parses as inf.
SPECIAL_TOKENS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e308",
    "-0.0",
    "2e-400",
    str(2**70),
    str(2**1100),
    "1" * 400,
    "true",
    "null",
    '"1"',
    "[]",
    "{}",
]
BAD_IDENTIFIERS = [
    "",
    " ",
    "a b",
    "a\n",
    "\na",
    "-a",
    "_a",
    "a" * 33,
    "a" * 65,
    "a" * 5000,
    "é",
    "😀",
    "\x00",
    "a\x00b",
    "\ud800",
    "a\udfff",
    "\u202e",
    "a\r",
]

any_char = st.one_of(st.characters(), st.characters(categories=["Cs"]))  # Cs: lone surrogates
unicode_text = st.text(any_char, max_size=40)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SPECIAL_NUMBERS),
    unicode_text,
    st.sampled_from(BAD_IDENTIFIERS),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(unicode_text, inner, max_size=4),
    max_leaves=12,
)
name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,10}", fullmatch=True)
valid_field: dict[str, st.SearchStrategy[Any]] = {
    "account": name,
    "symbol": name,
    "action": st.sampled_from(ACTIONS),
    # Above 100 the risk filter refuses; up to 1e12 is still a valid signal.
    "volume": st.floats(min_value=0.01, max_value=150.0) | st.sampled_from([1e-9, 1e12]),
    "price": st.none() | st.floats(min_value=0.01, max_value=1e6) | st.just(1e12),
    "signal_id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True),
    # Seconds from now (the TTL is 30 s: some expire), or absolute: 1970, or far in the future.
    "created_at": st.floats(min_value=-45.0, max_value=5.0) | st.sampled_from(["1.0", "1e12"]),
    "strategy": st.from_regex(r"[a-z]{0,8}", fullmatch=True) | unicode_text,
}


def valid_object(draw: st.DrawFn) -> dict[str, Any]:
    data = {key: draw(strategy) for key, strategy in valid_field.items()}
    when = data["created_at"]
    data["created_at"] = float(when) if isinstance(when, str) else time.time() + when
    for optional in ("price", "strategy"):
        if draw(st.booleans()):
            del data[optional]
    return data


@st.composite
def signal_objects(draw: st.DrawFn, mutations: int) -> dict[str, Any]:
    """A valid signal's fields with up to ``mutations`` of them dropped, mistyped, given a bad
    identifier or a special number."""
    data = valid_object(draw)
    for key in draw(st.lists(st.sampled_from(KNOWN_FIELDS), max_size=mutations, unique=True)):
        how = draw(st.sampled_from(["drop", "wrong_type", "bad_identifier", "special_number"]))
        if how == "drop":
            data.pop(key, None)
        elif how == "wrong_type":
            data[key] = draw(json_values)
        elif how == "bad_identifier":
            data[key] = draw(st.sampled_from(BAD_IDENTIFIERS) | unicode_text)
        else:
            data[key] = draw(st.sampled_from(SPECIAL_NUMBERS))
    return data


def to_json(value: Any, ascii_only: bool) -> bytes:
    """JSON with Python's NaN/Infinity tokens; non-ASCII text as raw (maybe invalid) UTF-8."""
    text = json.dumps(value, allow_nan=True, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


def with_token(draw: st.DrawFn) -> bytes:
    """A valid signal with one field spelled as a raw JSON token."""
    data = valid_object(draw)
    data[draw(st.sampled_from(KNOWN_FIELDS))] = "@TOKEN@"
    return json.dumps(data).replace('"@TOKEN@"', draw(st.sampled_from(SPECIAL_TOKENS))).encode()


def nested(depth: int, opener: str, closer: str, leaf: str = "1") -> bytes:
    return (opener * depth + leaf + closer * depth).encode()


# Depths below 850 parse, from 1000 up exceed the JSON parser's recursion limit in any thread;
# the gap between is avoided: there the outcome depends on the calling thread's stack depth.
NESTED = [
    nested(d, o, c) for d in (1, 50, 1000, 2000, 10_000) for o, c in (("[", "]"), ('{"a":', "}"))
]
NESTED.append(b'{"signal_id":' + nested(1500, "[", "]") + b"}")

# What one entry is made of, weighted by how many slots each kind has.
KINDS = [
    "foreign",  # random field names and values, most without a signal field
    "valid",
    "valid",
    "mutated",
    "mutated",
    "mutated",
    "extra_fields",
    "token",
    "json_any",
    "binary",
    "nested",
    "long_string",
    "poisoned",  # a valid signal the engine raises on (the test hook), every delivery
]


@st.composite
def entries(draw: st.DrawFn) -> dict[bytes, bytes]:
    kind = draw(st.sampled_from(KINDS))
    extra = draw(st.dictionaries(st.binary(max_size=16), st.binary(max_size=64), max_size=2))
    if kind == "foreign":
        return extra or {b"": b""}
    if kind == "valid":
        payload = to_json(valid_object(draw), draw(st.booleans()))
    elif kind == "poisoned":
        data = valid_object(draw)
        data["signal_id"] = POISON_PREFIX + data["signal_id"]
        payload = to_json(data, draw(st.booleans()))
    elif kind == "mutated":
        payload = to_json(draw(signal_objects(mutations=2)), draw(st.booleans()))
    elif kind == "extra_fields":
        data = valid_object(draw)
        data.update(draw(st.dictionaries(unicode_text, json_values, min_size=1, max_size=2)))
        payload = to_json(data, draw(st.booleans()))
    elif kind == "token":
        payload = with_token(draw)
    elif kind == "json_any":
        payload = to_json(draw(json_values), draw(st.booleans()))
    elif kind == "binary":
        payload = draw(st.binary(max_size=300))
    elif kind == "nested":
        payload = draw(st.sampled_from(NESTED))
    else:
        n = draw(st.sampled_from([100, 4000, 5000, 100_000]))
        payload = json.dumps({draw(st.sampled_from(KNOWN_FIELDS)): "x" * n}).encode()
    if draw(st.integers(0, 15)) == 0:  # now and then cut short: broken JSON
        # (the cut is drawn independently of the length, which depends on the clock: the same
        # choices must make the same draws, or hypothesis calls the strategy flaky)
        payload = payload[: draw(st.integers(0, 4096)) % max(1, len(payload))]
    return {**extra, SIGNAL_FIELD: payload}


# ---- helpers ----------------------------------------------------------------------------------


@dataclass
class ThreadDeaths:
    """Exceptions that ended a thread while the test ran (for the failure message)."""

    seen: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(self.seen) or "(no thread exception recorded)"


@contextmanager
def recording_thread_deaths() -> Iterator[ThreadDeaths]:
    deaths = ThreadDeaths()
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        tb = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        deaths.seen.append(f"thread {args.thread.name if args.thread else '?'} died:\n{tb}")
        previous(args)

    threading.excepthook = hook
    try:
        yield deaths
    finally:
        threading.excepthook = previous


def id_key(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def delivered_up_to(client: Redis, keys: Keys) -> tuple[int, int]:
    for group in client.xinfo_groups(keys.signals):
        if group["name"] in (GROUP, GROUP.encode()):
            return id_key(group["last-delivered-id"])
    return (0, 0)


def pending_count(client: Redis, keys: Keys) -> int:
    return int(client.xpending(keys.signals, GROUP)["pending"])


def expected_reason(fields: dict[bytes, bytes], max_bytes: int) -> str | None:
    """The dead-letter reason the validator gives this entry; None if it is a valid signal.

    The validator itself raising anything but InvalidSignal is a bug the engine must survive
    by dead-lettering the entry as poison.
    """
    try:
        decode_signal(fields, max_bytes)
    except InvalidSignal as exc:
        return exc.reason
    except Exception:
        return "poison"
    return None


def expected_reasons(fields: dict[bytes, bytes], max_bytes: int) -> set[str | None]:
    """The outcomes that are right for this entry (None: executed, or expired).

    How deep a JSON payload may nest before the parser gives up depends on the interpreter's
    recursion limit at that moment, and hypothesis raises it while it runs: a deeply nested
    payload may be refused as invalid_json, or parsed and refused for its fields. Both are
    right; so the validator is asked at the default limit and at a high one.
    """
    reasons = {expected_reason(fields, max_bytes)}
    if reasons == {None}:
        signal = decode_signal(fields, max_bytes)
        return {"poison"} if signal.signal_id.startswith(POISON_PREFIX) else {None}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        reasons.add(expected_reason(fields, max_bytes))
    finally:
        sys.setrecursionlimit(limit)
    return reasons


def show(fields: dict[bytes, bytes]) -> str:
    return repr({k[:40]: v[:200] for k, v in fields.items()})


def results_by_signal(client: Redis, keys: Keys) -> set[str]:
    return {json.loads(f[RESULT_FIELD])["signal_id"] for _id, f in client.xrange(keys.results)}


def dead_letters(client: Redis, keys: Keys) -> dict[bytes, str]:
    """Entry id -> reason, for every dead-lettered entry."""
    return {f[b"entry_id"]: f[b"reason"].decode() for _id, f in client.xrange(keys.signals_dead)}


def poison_deliveries(client: Redis, keys: Keys) -> dict[bytes, int]:
    """Entry id -> deliveries before it was dead-lettered as poison (from the record's detail)."""
    out = {}
    for _id, f in client.xrange(keys.signals_dead):
        if f[b"reason"] == b"poison":
            found = re.search(rb"after (\d+) deliveries", f[b"detail"])
            out[f[b"entry_id"]] = int(found.group(1)) if found else -1
    return out


def engine(settings: Settings) -> EngineService:
    broker = PaperBroker(BrokerKnobs(latency=0.0005, jitter=0.0))
    return EngineService(settings, EngineOptions(metrics_port=0), broker=broker)


# ---- tests ------------------------------------------------------------------------------------


def test_arbitrary_entries_never_stop_the_engine(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Engine, "_checkpoint", crashing_checkpoint("poison", POISON_PREFIX))
    keys = Keys()
    client = make_client(settings.redis_url)
    producer = SignalStream(client, keys)
    thrown: list[tuple[bytes, dict[bytes, bytes]]] = []
    with recording_thread_deaths() as deaths, engine(settings) as svc:

        @hypothesis_settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # it never fails inside: no shrinking
            suppress_health_check=list(HealthCheck),
        )
        @given(batch=st.lists(entries(), min_size=1, max_size=3))
        @example(batch=[{SIGNAL_FIELD: nested(10_000, "[", "]")}])
        @example(batch=[{SIGNAL_FIELD: nested(2000, "[", "]")}])
        @example(batch=[{SIGNAL_FIELD: b'{"signal_id": "\\ud800"}'}])
        @example(batch=[{SIGNAL_FIELD: b'{"signal_id": "p1", "volume": NaN}'}])
        @example(batch=[{SIGNAL_FIELD: b'{"signal_id": "p2", "volume": 1e308}'}])
        @example(batch=[{SIGNAL_FIELD: b'{"signal_id": "p3", "volume": 1180591620717411303424}'}])
        @example(batch=[{b"": b""}])
        @example(
            batch=[{SIGNAL_FIELD: Signal("a", "S", "buy", 1, signal_id=POISON_PREFIX).to_json()}]
        )
        @example(batch=[{SIGNAL_FIELD: b"\xff\xfe\x00"}])
        def throw(batch: list[dict[bytes, bytes]]) -> None:
            last = b"0-0"
            for fields in batch:
                last = producer.publish_raw(fields)
                thrown.append((last, fields))
            # Pace: let the engine read this batch before the next one (it keeps handling
            # earlier entries' redeliveries meanwhile). Never fail in here: a dead engine
            # would fail every later example and make hypothesis blame the wrong one.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and svc.problem() is None:
                if delivered_up_to(client, keys) >= id_key(last):
                    break
                time.sleep(0.005)

        throw()
        assert svc.problem() is None, f"{svc.problem()} after {len(thrown)} entries\n{deaths}"

        final = Signal(
            account="acct-final",
            symbol="EURUSD",
            action="buy",
            volume=1,
            signal_id=f"final-{uuid.uuid4().hex}",
        )
        producer.publish(final)
        wait_until(
            lambda: final.signal_id in results_by_signal(client, keys),
            15,
            f"a result for the valid signal {final.signal_id} published after the storm",
        )
        try:
            wait_until(
                lambda: svc.problem() is not None or pending_count(client, keys) == 0,
                SETTLE_SECONDS,
                "every thrown entry to be acknowledged or dead-lettered",
            )
            assert svc.problem() is None, f"{svc.problem()}\n{deaths}"
        except TimeoutError as exc:
            rows = client.xpending_range(keys.signals, GROUP, min="-", max="+", count=10)
            stuck = {r["message_id"]: r["times_delivered"] for r in rows}
            by_id = dict(thrown)
            detail = "\n".join(
                f"{eid!r} x{n}: {show(by_id.get(eid, {}))}" for eid, n in stuck.items()
            )
            raise AssertionError(f"{exc}; still pending:\n{detail}\n{deaths}") from None

        dead = dead_letters(client, keys)
        executed = results_by_signal(client, keys)
        wrong: list[str] = []
        for entry_id, fields in thrown:
            want = expected_reasons(fields, settings.signal_max_bytes)
            got = dead.get(entry_id)
            if got is not None and got in want:
                continue  # dead-lettered with a right reason
            if None in want:  # a valid signal: executed, or dead-lettered as expired
                sid = json.loads(fields[SIGNAL_FIELD])["signal_id"]
                if (got is None and sid in executed) or got == "expired":
                    continue
            wrong.append(
                f"{entry_id!r}: dead letter {got!r}, expected one of {sorted(map(str, want))}"
                f" (None: executed): {show(fields)}"
            )
        assert not wrong, f"{len(wrong)} of {len(thrown)} entries ended wrongly:\n" + "\n".join(
            wrong[:15]
        )
        early = {
            eid: n
            for eid, n in poison_deliveries(client, keys).items()
            if n < settings.poison_deliveries
        }
        assert early == {}, (
            f"dead-lettered as poison before {settings.poison_deliveries} deliveries: {early}"
        )
        reasons = set(dead.values())
        assert {"poison", "invalid_json", "missing_field", "bad_field", "oversized"} <= reasons, (
            f"the generated entries do not reach every path: dead-letter reasons {reasons}"
        )
        assert svc.problem() is None, f"{svc.problem()}\n{deaths}"


def test_out_of_range_price_or_volume_is_dead_lettered_and_engine_goes_on(
    settings: Settings,
) -> None:
    """1e300 is a finite float, but far above any tradable price or volume (the bound keeps
    notional and cash finite): it is refused as bad, not executed, and trading goes on."""
    keys = Keys()
    client = make_client(settings.redis_url)
    producer = SignalStream(client, keys)
    base = {
        "account": "acct",
        "symbol": "SYM",
        "action": "buy",
        "volume": 1.0,
        "created_at": time.time(),
    }
    cases = {
        "huge-price": ({**base, "price": 1e300, "signal_id": "huge-price"}, "bad_field"),
        "huge-volume": ({**base, "volume": 1e300, "signal_id": "huge-volume"}, "bad_volume"),
    }
    with engine(settings) as svc:
        ids = {
            producer.publish_raw({SIGNAL_FIELD: json.dumps(data).encode()}): (sid, reason)
            for sid, (data, reason) in cases.items()
        }
        producer.publish(
            Signal(account="acct", symbol="SYM", action="buy", volume=1, signal_id="after-huge")
        )
        wait_until(
            lambda: "after-huge" in results_by_signal(client, keys),
            15,
            "the valid signal after the out-of-range ones to be executed",
        )
        wait_until(
            lambda: len(dead_letters(client, keys)) >= 2,
            10,
            "both out-of-range signals dead-lettered",
        )
        dead = dead_letters(client, keys)
        assert {ids[eid][0]: dead.get(eid) for eid in ids} == {
            sid: reason for sid, (_d, reason) in cases.items()
        }
        executed = results_by_signal(client, keys)
        assert executed == {"after-huge"}
        assert pending_count(client, keys) == 0
        assert svc.problem() is None


@pytest.mark.parametrize("name", ["account", "symbol", "signal_id"])
def test_identifier_with_a_trailing_newline_is_dead_lettered(settings: Settings, name: str) -> None:
    """An identifier is ``[A-Za-z0-9][A-Za-z0-9_.:/-]*`` and nothing else: a trailing newline
    (which a regex ``$`` lets through) would end up in Redis keys, results and metric labels."""
    keys = Keys()
    client = make_client(settings.redis_url)
    producer = SignalStream(client, keys)
    data = {
        "account": "acct",
        "symbol": "SYM",
        "action": "buy",
        "volume": 1.0,
        "signal_id": f"newline-{name}",
        "created_at": time.time(),
    }
    data[name] = f"{data[name]}\n"
    with engine(settings) as svc:
        entry_id = producer.publish_raw({SIGNAL_FIELD: json.dumps(data).encode()})
        producer.publish(
            Signal(account="acct", symbol="SYM", action="buy", volume=1, signal_id="after-nl")
        )
        wait_until(
            lambda: "after-nl" in results_by_signal(client, keys),
            15,
            "the valid signal after the newline one to be executed",
        )
        wait_until(lambda: pending_count(client, keys) == 0, 10, "nothing left pending")
        assert dead_letters(client, keys).get(entry_id) == "bad_field", (
            f"{name}={data[name]!r} was not refused as bad_field; results: "
            f"{sorted(results_by_signal(client, keys))}"
        )
        assert results_by_signal(client, keys) == {"after-nl"}
        assert svc.problem() is None
