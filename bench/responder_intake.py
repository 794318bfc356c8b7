"""Webhooks per second the responder takes with every event stored, against the HTTP floor.

The same load goes to each server in turn: version-4 Alertmanager payloads POSTed to
``/alertmanager/webhook`` over keep-alive connections, each alert with a fingerprint never sent
before, so every request makes the responder store new events.

- ``floor``: a bare Starlette app served by the responder's own BackgroundHTTPServer (the same
  socket options and uvicorn settings, in a background thread); its one route reads the body and
  answers a small JSON 200. No server built on this stack goes faster, so the responder's figure
  is reported as a fraction of it: what validation, the history store and its fsync cost.
- ``responder (sqlite)``: a real ResponderServer, no throttling, no credentials, history in a
  SQLite file (its contract: every event on disk before the 200; the line names the
  filesystem, since an fsync on tmpfs costs nothing), and ``--channels`` channels (default 1)
  that take every notification and discard it: each event writes that many outbox entries in
  its transaction, and the background sender delivers them meanwhile, as in production; the
  channel itself costs nothing, so the figure is the responder's, not a chat service's.
- ``responder (postgresql)`` with ``--postgres``: the same against a throwaway PostgreSQL.
  That cluster runs with ``fsync=off`` (the harness's setting for tests), so it measures the
  round trips and not the disk.

The systems run in ``--rounds`` rounds (default 3), floor first and then each responder, and each
responder's ratio is against the floor of its own round: on a shared host the CPU the bench gets
moves by minutes (steal), so one floor run and one responder run minutes apart can differ by 2x
for reasons of neither. The median ratio over the rounds is the figure, with its range.

After each responder run the bench checks what the responder promises: every event answered
with a 200 is in the history (``history.count()`` equals the 200s times the alerts per payload,
plus at most the alerts of requests that were still unanswered when the load stopped: wrk ends
mid-request and the server still stores those). A missing event fails the bench; speed never
does (the figures are for notes).

The load comes from ``wrk`` (Debian package ``wrk``) with a Lua script that makes each
fingerprint from its thread's number and a per-thread counter; without wrk, from httpx clients
in ``--threads`` separate processes (not the server's, so they do not share its GIL), which are
slower than wrk and may themselves be the limit of the floor's figure. Both loads share the
machine's cores with the server: the figures are for this machine, in this one run.

Run from the repository root: ``python -m bench.responder_intake [--postgres]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.common import median, quantile
from tradeguard.process.services import PostgresServer
from tradeguard.responder.http_server import BackgroundHTTPServer
from tradeguard.responder.notification import Notification
from tradeguard.responder.service import ResponderServer, load_responder_settings

WEBHOOK_PATH = "/alertmanager/webhook"  # the route Alertmanager's webhook_config points at
PLACEHOLDER = "@@fingerprint@@"
HEADERS = {"Content-Type": "application/json"}
SETTLE_SECONDS = 15.0  # longest wait for requests still in the server when the load stopped


# ---- payloads -------------------------------------------------------------------------------
def payload_parts(alerts: int) -> list[str]:
    """A valid version-4 payload of ``alerts`` firing alerts, cut where each fingerprint goes.

    The load generators put a fresh quoted fingerprint between consecutive parts, so building a
    request costs a string join and no JSON encoding (in Lua as in Python).
    """
    labels = {
        "alertname": "RedisTradeStateLatencyHigh",
        "severity": "critical",
        "component": "redis_trade_state",
        "instance": "127.0.0.1:6380",
    }
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {
            "summary": "Trade-state Redis reads are slow.",
            "description": "p99 read latency is 12ms (threshold 5ms).",
            "runbook_url": "docs/runbooks/RedisTradeStateLatencyHigh.md",
        },
        "startsAt": "2024-05-01T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": PLACEHOLDER,
    }
    doc = {
        "version": "4",
        "groupKey": '{}:{alertname="RedisTradeStateLatencyHigh"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "chat-critical",
        "groupLabels": {"alertname": "RedisTradeStateLatencyHigh"},
        "commonLabels": {"alertname": "RedisTradeStateLatencyHigh", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [alert] * alerts,
    }
    return json.dumps(doc).split(json.dumps(PLACEHOLDER))


def fingerprint(worker: int, alert: int, n: int) -> str:
    """Alertmanager-like 16 hex digits, unique per (worker, alert in payload, request number).

    The wrk script formats the same way (``%02x%02x%012x``).
    """
    return f"{worker:02x}{alert:02x}{n:012x}"


def assemble(parts: list[str], worker: int, n: int) -> bytes:
    pieces = [parts[0]]
    for i, part in enumerate(parts[1:]):
        pieces.append(f'"{fingerprint(worker, i, n)}"')
        pieces.append(part)
    return "".join(pieces).encode()


# ---- servers --------------------------------------------------------------------------------
class FloorServer:
    """A bare Starlette app served the way the responder is (the same BackgroundHTTPServer:
    socket options, uvicorn settings, a background thread): the cost of the stack alone."""

    def __init__(self) -> None:
        app = Starlette(routes=[Route(WEBHOOK_PATH, self._webhook, methods=["POST"])])
        self._http = BackgroundHTTPServer(app, "127.0.0.1", 0, "floor server", "floor-http")

    @staticmethod
    async def _webhook(request: Request) -> Response:
        body = await request.body()  # read it all, as the responder must
        return JSONResponse({"accepted": 1, "bytes": len(body)})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.port}"

    def start(self) -> FloorServer:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()


@contextlib.contextmanager
def postgres_url(tmp: Path) -> Iterator[str]:
    """A throwaway PostgreSQL cluster's URL (its start waits until it answers queries)."""
    tmp.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(tmp / "pg").start()
    try:
        yield server.url
    finally:
        server.stop()
        if server.workdir.name.startswith("tradeguard-pg-"):  # as root: a private temp dir
            shutil.rmtree(server.workdir, ignore_errors=True)


# ---- load -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadResult:
    """What one load run saw, from the client's side."""

    issued: int  # requests sent, answered or not
    answered: int  # responses received, whatever their status
    ok: int  # 200 responses
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int  # connect, read and write errors (wrk) or failed requests (httpx)
    timeouts: int  # wrk only: responses slower than its timeout (they may still arrive)

    @property
    def rate(self) -> float:
        """200s a second: the deliveries the server took, not merely answered."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


LUA_SCRIPT = """\
-- POSTs version-4 Alertmanager webhooks; every alert gets a fingerprint never sent before,
-- made of the thread's number, the alert's index in the payload and a per-thread counter.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local parts = {%(parts)s}
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  issued = 0
  ok = 0
end

function request()
  issued = issued + 1
  local body = {parts[1]}
  for i = 2, #parts do
    body[#body + 1] = string.format('"%%02x%%02x%%012x"', thread_id, i - 2, issued)
    body[#body + 1] = parts[i]
  end
  return wrk.format(nil, nil, nil, table.concat(body))
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  end
end

function done(summary, latency, requests)
  local all_issued, all_ok = 0, 0
  for _, thread in ipairs(threads) do
    all_issued = all_issued + thread:get("issued")
    all_ok = all_ok + thread:get("ok")
  end
  io.write(string.format("bench-counts issued=%%d ok=%%d\\n", all_issued, all_ok))
end
"""


def lua_script(parts: list[str]) -> str:
    """The wrk script with the payload's parts as Lua long strings (no escaping to get wrong)."""
    for part in parts:
        if "]==]" in part:
            raise ValueError("a payload part contains the Lua long-string terminator")
    return LUA_SCRIPT % {"parts": ", ".join(f"[==[{p}]==]" for p in parts)}


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def _find(pattern: str, text: str) -> re.Match[str]:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"unexpected wrk output (no match for {pattern!r}):\n{text}")
    return match


def parse_wrk(output: str) -> LoadResult:
    """wrk's report (run with ``--latency``) plus the script's ``bench-counts`` line."""
    requests = _find(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", output)
    p50 = _find(r"^\s*50(?:\.000)?%\s+([\d.]+)(us|ms|s|m|h)", output)
    p99 = _find(r"^\s*99(?:\.000)?%\s+([\d.]+)(us|ms|s|m|h)", output)
    _find(r"^Requests/sec:\s+([\d.]+)", output)  # present in every complete report
    counts = _find(r"^bench-counts issued=(\d+) ok=(\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return LoadResult(
        issued=int(counts[1]),
        answered=int(requests[1]),
        ok=int(counts[2]),
        seconds=_ms(requests[2], requests[3]) / 1e3,
        p50_ms=_ms(p50[1], p50[2]),
        p99_ms=_ms(p99[1], p99[2]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(sock[i]) for i in (1, 2, 3)) if sock else 0,
        timeouts=int(sock[4]) if sock else 0,
    )


def run_wrk(url: str, parts: list[str], args: argparse.Namespace, tmp: Path) -> LoadResult:
    script = tmp / "webhook.lua"
    script.write_text(lua_script(parts))
    cmd = [
        "wrk",
        f"--threads={args.threads}",
        f"--connections={args.connections}",
        f"--duration={args.seconds}s",
        "--timeout=10s",
        "--latency",
        f"--script={script}",
        url + WEBHOOK_PATH,
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, check=False, timeout=args.seconds + 60
    )
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


@dataclass
class _Tally:
    issued: int = 0
    answered: int = 0
    ok: int = 0
    non_2xx: int = 0
    failed: int = 0


async def _httpx_load(
    url: str, parts: list[str], seconds: float, workers: range, barrier: Barrier
) -> tuple[_Tally, list[float], float]:
    tally = _Tally()
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=len(workers), max_keepalive_connections=len(workers))
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        barrier.wait()  # all load processes start together (blocking is fine: nothing runs yet)
        started = time.perf_counter()
        deadline = started + seconds

        async def worker(worker_id: int) -> None:
            n = 0
            # Stops sending at the deadline but waits for its last answer, so nothing is left
            # in flight and the stored count must equal the 200s exactly.
            while time.perf_counter() < deadline:
                n += 1
                body = assemble(parts, worker_id, n)
                tally.issued += 1
                sent = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=HEADERS)
                except httpx.HTTPError:
                    tally.failed += 1
                    continue
                latencies.append((time.perf_counter() - sent) * 1e3)
                tally.answered += 1
                if response.status_code == 200:
                    tally.ok += 1
                elif not 200 <= response.status_code < 300:
                    tally.non_2xx += 1

        await asyncio.gather(*(worker(w) for w in workers))
        elapsed = time.perf_counter() - started
    return tally, latencies, elapsed


def _httpx_process(
    url: str,
    parts: list[str],
    seconds: float,
    workers: range,
    barrier: Barrier,
    results: Queue[tuple[_Tally, list[float], float]],
) -> None:
    """One load process: its share of the connections, for ``seconds`` after the barrier."""
    results.put(asyncio.run(_httpx_load(url, parts, seconds, workers, barrier)))


def run_httpx(url: str, parts: list[str], args: argparse.Namespace) -> LoadResult:
    """The fallback load: ``--threads`` processes of httpx clients, ``--connections`` in all.

    Separate processes so the clients neither share the server's GIL nor each other's; they
    meet at a barrier so their windows coincide.
    """
    ctx = multiprocessing.get_context("spawn")  # the server's threads are running: no fork
    barrier = ctx.Barrier(args.threads)
    results: Queue[tuple[_Tally, list[float], float]] = ctx.Queue()
    procs = []
    for i in range(args.threads):
        share = range(
            i * args.connections // args.threads, (i + 1) * args.connections // args.threads
        )
        proc = ctx.Process(
            target=_httpx_process,
            args=(url + WEBHOOK_PATH, parts, float(args.seconds), share, barrier, results),
            daemon=True,
        )
        proc.start()
        procs.append(proc)
    gathered = [results.get(timeout=args.seconds + 120) for _ in procs]
    for proc in procs:
        proc.join(10)
    latencies = [ms for _, samples, _ in gathered for ms in samples]
    if not latencies:
        raise SystemExit("the httpx load got no answer at all")
    return LoadResult(
        issued=sum(t.issued for t, _, _ in gathered),
        answered=sum(t.answered for t, _, _ in gathered),
        ok=sum(t.ok for t, _, _ in gathered),
        seconds=max(elapsed for _, _, elapsed in gathered),
        p50_ms=quantile(latencies, 0.50),
        p99_ms=quantile(latencies, 0.99),
        non_2xx=sum(t.non_2xx for t, _, _ in gathered),
        socket_errors=sum(t.failed for t, _, _ in gathered),
        timeouts=0,
    )


# ---- checks and figures ---------------------------------------------------------------------
def settled_count(count: Callable[[], int]) -> int:
    """The stored count once requests still inside the server when the load stopped are done."""
    last = count()
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = count()
        if now == last:
            return now
        last = now
    return last


def durability(stored: int, load: LoadResult, alerts: int) -> tuple[bool, str]:
    """Whether every acknowledged event is stored, and nothing beyond what was sent.

    Requests unanswered when the load stopped (wrk abandons them; httpx waits, so only failed
    ones) may or may not have been stored: they widen the upper bound only.
    """
    acknowledged = load.ok * alerts
    unanswered = load.issued - load.answered
    most = acknowledged + unanswered * alerts
    tail = f"{load.ok} webhooks answered 200 x {alerts} alert{'s' if alerts > 1 else ''}"
    if stored < acknowledged:
        return False, f"MISSING {acknowledged - stored} events: {stored} stored < {tail}"
    if stored > most:
        return False, (
            f"{stored} events stored > {most} sent ({tail}, {unanswered} requests unanswered)"
        )
    if stored == acknowledged:
        return True, f"ok, {stored} events stored = {tail}"
    extra = stored - acknowledged
    return True, (
        f"ok, {stored} events stored = {tail} + {extra} events of the {unanswered} requests "
        "still unanswered when the load stopped"
    )


def figures(load: LoadResult, unit: str) -> str:
    timeouts = f", {load.timeouts} over wrk's timeout" if load.timeouts else ""
    return (
        f"{load.rate:.0f} {unit}/s p50 {load.p50_ms:.1f} ms p99 {load.p99_ms:.1f} ms, "
        f"{load.errors} errors{timeouts}"
    )


def filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (an fsync on tmpfs costs nothing)."""
    best, kind = "", "?"
    with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            mounted = len(fields) > 2 and path.resolve().is_relative_to(fields[1])
            if mounted and len(fields[1]) > len(best):
                best, kind = fields[1], fields[2]
    return kind


def progress(message: str) -> None:
    print(f"  .. {message}", flush=True)


class DiscardChannel:
    """A channel that takes every notification and drops it: the outbox and the sender do
    their whole job, the far end costs nothing."""

    is_pager = False

    def __init__(self, name: str) -> None:
        self.name = name

    def accepts(self, notification: Notification) -> bool:
        return True

    def send(self, notification: Notification) -> None:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="load per system and round")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of floor then responder, interleaved: each ratio is against the floor "
        "of its own round, and the median is reported (a shared host's CPU varies by minutes)",
    )
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (httpx: processes)")
    parser.add_argument("--alerts", type=int, default=1, help="alerts per webhook payload")
    parser.add_argument(
        "--postgres", action="store_true", help="also a responder over a throwaway PostgreSQL"
    )
    parser.add_argument(
        "--load",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="load generator (auto: wrk when installed, else httpx)",
    )
    parser.add_argument("--tmpdir", type=Path, default=None, help="where the SQLite file goes")
    parser.add_argument(
        "--channels",
        type=int,
        default=1,
        help="discarding channels: outbox entries written (and delivered) per event",
    )
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.threads < 1 or args.connections < args.threads:
        parser.error("need --seconds >= 1, --threads >= 1 and --connections >= --threads")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be from 1 to 20")
    if not 1 <= args.alerts <= 255:
        parser.error("--alerts must be from 1 to 255")

    loader = args.load
    if loader == "auto":
        loader = "wrk" if shutil.which("wrk") else "httpx"
        if loader == "httpx":
            print(
                "wrk is not installed (Debian/Ubuntu: apt-get install wrk); falling back to "
                "httpx clients in subprocesses, which may limit the floor's figure",
                flush=True,
            )
    elif loader == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    overridden = sorted(k for k in os.environ if k.startswith("TRADEGUARD_RESPONDER_"))
    if overridden:
        print(f"note: the responder also reads {', '.join(overridden)}", flush=True)

    parts = payload_parts(args.alerts)
    body_bytes = len(assemble(parts, 0, 0))
    print(
        f"responder intake: {loader}, {args.threads} threads, {args.connections} connections, "
        f"{args.seconds} s per system, {args.alerts} alert(s) per webhook ({body_bytes} bytes), "
        f"{os.cpu_count()} cores shared by server and load",
        flush=True,
    )

    def load(url: str, tmp: Path) -> LoadResult:
        progress(f"{loader} load on {url}{WEBHOOK_PATH} for {args.seconds} s")
        if loader == "wrk":
            return run_wrk(url, parts, args, tmp)
        return run_httpx(url, parts, args)

    systems: list[tuple[str, Callable[[Path, int], contextlib.AbstractContextManager[str]]]] = [
        (
            "sqlite",
            lambda tmp, rnd: contextlib.nullcontext(f"sqlite:///{tmp}/history-{rnd}.sqlite3"),
        ),
    ]
    if args.postgres:
        systems.append(("postgresql", lambda tmp, rnd: postgres_url(tmp / f"pg-{rnd}")))
    floors: list[LoadResult] = []
    runs: dict[str, list[tuple[LoadResult, float]]] = {name: [] for name, _ in systems}
    lines: list[str] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tradeguard-bench-", dir=args.tmpdir) as tmpdir:
        tmp = Path(tmpdir)
        for rnd in range(1, args.rounds + 1):
            progress(f"round {rnd} of {args.rounds}: floor (bare Starlette app, same uvicorn)")
            floor_server = FloorServer().start()
            try:
                floor = load(floor_server.url, tmp)
            finally:
                floor_server.stop()
            floors.append(floor)
            progress(f"floor: {figures(floor, 'requests')}")
            for name, history_url in systems:
                with history_url(tmp, rnd) as url:
                    where = f"on {filesystem(tmp)}" if name == "sqlite" else "fsync=off"
                    progress(f"round {rnd}: responder ({name}, {where}): starting")
                    settings = load_responder_settings(
                        port=0,
                        insecure=True,
                        history_url=url,
                        console=False,
                        throttle_per_minute={},
                    )
                    channels = [DiscardChannel(f"discard-{i}") for i in range(args.channels)]
                    server = ResponderServer(settings, channels=channels).start()
                    try:
                        before = server.history.count()
                        result = load(server.url, tmp)
                        progress(f"responder ({name}): waiting for requests still in the server")
                        stored = settled_count(server.history.count) - before
                    finally:
                        server.stop()
                share = result.rate / floor.rate if floor.rate else 0.0
                runs[name].append((result, share))
                ok, verdict = durability(stored, result, args.alerts)
                lines.append(f"  round {rnd} durability ({name}): {verdict}")
                if not ok:
                    failures.append(f"{name}, round {rnd}: {verdict}")
                progress(f"responder ({name}): {figures(result, 'webhooks')}, {share:.2f}x")

    rates = [f.rate for f in floors]
    lines.insert(
        0,
        f"floor: median {median(rates):.0f} requests/s over {len(floors)} round(s) "
        f"({min(rates):.0f}-{max(rates):.0f}/s)",
    )
    outbox = f"{args.channels} outbox entr{'y' if args.channels == 1 else 'ies'}/event"
    for name, results in runs.items():
        shares = [share for _, share in results]
        webhooks = [r.rate for r, _ in results]
        p99 = median([r.p99_ms for r, _ in results])
        lines.insert(
            1,
            f"responder ({name}, {outbox}): median {median(shares):.2f}x the floor of its "
            f"round ({min(shares):.2f}-{max(shares):.2f}x), median {median(webhooks):.0f} "
            f"webhooks/s, p99 {p99:.1f} ms, {sum(r.errors for r, _ in results)} errors",
        )
    for line in lines:
        print(f"  {line}")
    sys.stdout.flush()
    if failures:
        raise SystemExit("acknowledged webhooks not in the history: " + "; ".join(failures))


if __name__ == "__main__":
    main()
