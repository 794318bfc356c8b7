"""The reads the *Now* page makes: the acknowledgement and the remediation attempts of exactly
the firing occurrences, on both history backends, however many there are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradeguard.responder.events import AlertEvent
from tradeguard.responder.history import open_history

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def event(fingerprint: str, starts_at: datetime) -> AlertEvent:
    return AlertEvent(fingerprint, "A", "firing", starts_at, None, "critical", None, None)


def test_acks_and_attempts_of_the_given_occurrences_only(history_url: str) -> None:
    history = open_history(history_url)
    try:
        # 450 occurrences: more than one chunk of keys; two occurrences of one fingerprint.
        keys = [(f"{n:04x}", T0 + timedelta(seconds=n)) for n in range(450)]
        keys.append(("0001", T0 + timedelta(hours=1)))
        history.insert_many([event(f, s) for f, s in keys], lambda _e: [])
        for fingerprint in ("0001", "01c1"):
            assert history.acknowledge(fingerprint, "dana", False, "on it", T0 + timedelta(hours=2))
        for n, (fingerprint, starts) in enumerate([keys[3], keys[3], keys[420]]):
            history.claim_action_attempt(
                fingerprint=fingerprint,
                starts_at=starts,
                alertname="A",
                action="reconnect",
                target="engine",
                attempt=n + 1,
                decided_by="r1",
                decided_at=T0 + timedelta(minutes=n),
                verdict="run",
                reason="test",
            )
        acks = history.acks_of(keys)
        # acknowledge() takes the newest occurrence of the fingerprint: not the older 0001
        assert set(acks) == {keys[-1], keys[0x1C1]}
        assert acks[keys[-1]].acked_by == "dana" and acks[keys[-1]].note == "on it"
        attempts = history.attempts_of(keys)
        assert set(attempts) == {keys[3], keys[420]}
        assert [a.attempt for a in attempts[keys[3]]] == [1, 2]
        assert history.acks_of([]) == {} and history.attempts_of([]) == {}
        # An occurrence not asked for is not answered, even when its fingerprint is.
        assert history.acks_of([("0001", T0 + timedelta(seconds=1))]) == {}
    finally:
        history.close()
