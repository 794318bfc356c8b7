"""The end-of-run audit reads the records that keep everything (ledger, dead letters, book),
not the capped result stream: a long run that lost nothing reports nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

from tradeguard.bus.connection import make_client
from tradeguard.bus.keys import Keys
from tradeguard.bus.results import RESULT_FIELD
from tradeguard.chaos.audit import RunRecords, audit
from tradeguard.ha.ledger import open_ledger
from tradeguard.process.services import RedisServer

RUN = 1500  # signals in the "long run"
STREAM_CAP = 500  # the result stream keeps about this many (production: about 10,000)


def test_a_run_longer_than_the_result_stream_keeps_reports_nothing_lost(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger = open_ledger(ledger_url)
    ledger.setup()
    ids = [f"sig-{i:05d}" for i in range(RUN)]
    client = make_client(redis_server.url)
    for sid in ids:  # what the engine leaves behind for each signal it executed
        ledger.execute_raw(
            "INSERT INTO actions (signal_id, epoch, holder, state, status, created_at, "
            "updated_at) VALUES (?, 1, 'r1', 'done', 'filled', 0, 0)",
            (sid,),
        )
        client.xadd(
            Keys().results,
            {RESULT_FIELD: json.dumps({"signal_id": sid})},
            maxlen=STREAM_CAP,
            approximate=True,
        )
    ledger.close()
    dead = "sig-expired"
    client.xadd(Keys().signals_dead, {"signal_id": dead, "reason": "expired"})
    in_stream = {
        json.loads(f[RESULT_FIELD])["signal_id"] for _id, f in client.xrange(Keys().results)
    }
    assert len(in_stream) < RUN, "the stream was meant to be trimmed, as on a long run"

    with RunRecords(ledger_url, redis_server.url, tmp_path / "book.sqlite") as records:
        final = audit(records, [*ids, dead])
        assert final.lost == set()
        assert (final.published, final.executed, final.dropped) == (RUN + 1, RUN, 1)

        missing = "sig-never-handled"
        assert audit(records, [*ids, missing]).lost == {missing}
