"""Start-up crash recovery (seed 004): restore open positions from the ledger and check them.

A replica that cannot prove its positions are sound must not lead: it reports one of the
seed's codes (DB_UNAVAILABLE, DATA_CORRUPT, VALIDATION_FAILED) and stays a follower.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tradeguard.ha.ledger import Ledger, LedgerUnavailable, expected_risk_margin
from tradeguard.ha.records import Position
from tradeguard.metrics.catalog import Metrics
from tradeguard.metrics.vocabulary import RECOVERY_ERRORS

MISMATCH_TOLERANCE = 0.01


class RecoveryCode(StrEnum):
    OK = "OK"
    DB_UNAVAILABLE = "DB_UNAVAILABLE"
    DATA_CORRUPT = "DATA_CORRUPT"
    VALIDATION_FAILED = "VALIDATION_FAILED"


@dataclass
class RecoveryReport:
    code: RecoveryCode
    positions: list[Position] = field(default_factory=list)
    seconds: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.code is RecoveryCode.OK


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def validate_row(row: tuple[Any, ...]) -> tuple[RecoveryCode, str, Position | None]:
    """Check one raw position row: corrupt (unusable) or inconsistent (risk/margin off)."""
    if len(row) != 7:
        return RecoveryCode.DATA_CORRUPT, f"row has {len(row)} fields, expected 7", None
    account, symbol = row[0], row[1]
    numbers = [_number(v) for v in row[2:]]
    where = f"{account}/{symbol}"
    if not isinstance(account, str) or not account or not isinstance(symbol, str) or not symbol:
        return RecoveryCode.DATA_CORRUPT, f"position {where}: missing account or symbol", None
    if any(n is None for n in numbers):
        return RecoveryCode.DATA_CORRUPT, f"position {where}: non-numeric or non-finite field", None
    volume, price, leverage, risk, margin = (float(n) for n in numbers if n is not None)
    if price <= 0 or leverage <= 0 or risk < 0 or margin < 0:
        return RecoveryCode.DATA_CORRUPT, f"position {where}: impossible price/leverage/risk", None
    want_risk, want_margin = expected_risk_margin(volume, price, leverage)
    if abs(want_risk - risk) > MISMATCH_TOLERANCE or abs(want_margin - margin) > MISMATCH_TOLERANCE:
        return (
            RecoveryCode.VALIDATION_FAILED,
            f"position {where}: risk {risk:.4f} vs {want_risk:.4f}, margin {margin:.4f} vs "
            f"{want_margin:.4f} (tolerance {MISMATCH_TOLERANCE})",
            None,
        )
    return RecoveryCode.OK, "", Position(account, symbol, volume, price, leverage, risk, margin)


def recover(ledger: Ledger, metrics: Metrics | None = None) -> RecoveryReport:
    """Read and validate every position; the first problem decides the code."""
    start = time.perf_counter()
    report = RecoveryReport(RecoveryCode.OK)
    try:
        rows = ledger.positions()
    except LedgerUnavailable as exc:
        report = RecoveryReport(RecoveryCode.DB_UNAVAILABLE, detail=str(exc))
    else:
        for row in rows:
            code, detail, position = validate_row(tuple(row))
            if code is not RecoveryCode.OK:
                report = RecoveryReport(code, detail=detail)
                break
            assert position is not None
            report.positions.append(position)
    report.seconds = time.perf_counter() - start
    if metrics is not None:
        metrics.recovery.labels("success" if report.ok else "failure").inc()
        metrics.recovery_duration.set(report.seconds)
        metrics.recovery_positions.set(len(report.positions))
        reason = "" if report.ok else report.code.value.lower()
        for choice in RECOVERY_ERRORS:
            metrics.recovery_error.labels(choice).set(1 if choice == reason else 0)
    return report
