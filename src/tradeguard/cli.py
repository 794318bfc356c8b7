"""The ``tradeguard`` command line."""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

from tradeguard.bus.signal_stream import PublishError
from tradeguard.bus.signals import InvalidSignal, Signal
from tradeguard.chaos import DEFAULT_TOUR
from tradeguard.config import Settings, load_settings
from tradeguard.configbackup.cli import config_app
from tradeguard.errors import TradeguardError
from tradeguard.net import LOOPBACK
from tradeguard.responder.cli import alerts_app, responder_command
from tradeguard.responder.client import ResponderUnavailable
from tradeguard.stack import DEFAULT_RUN_DIR

if TYPE_CHECKING:
    from redis import Redis

    from tradeguard.bus.keys import Keys
    from tradeguard.engine.paper import BrokerKnobs
    from tradeguard.store.consistency import Verdict

app = typer.Typer(
    help="tradeguard: a Redis trade bus, a fenced engine, and the monitoring that keeps it honest.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
chaos_app = typer.Typer(
    help="Named fault scenarios and the alerts they must raise.", no_args_is_help=True
)
ha_app = typer.Typer(
    help="High availability: the fenced leader among engine replicas.", no_args_is_help=True
)
state_app = typer.Typer(
    help="Trade state: Redis against DuckDB's durable copy, and restoring lost accounts.",
    no_args_is_help=True,
)
rules_app = typer.Typer(
    help="Check the shipped alert rules, routing and runbooks.", no_args_is_help=True
)
instance_app = typer.Typer(
    help="Supervised terminal/worker instances: restart one the supervisor gave up on.",
    no_args_is_help=True,
)
app.add_typer(rules_app, name="rules")
app.add_typer(ha_app, name="ha")
app.add_typer(state_app, name="state")
app.add_typer(instance_app, name="instance")
app.add_typer(config_app, name="config")
app.add_typer(chaos_app, name="chaos")
app.add_typer(alerts_app, name="alerts")
app.command("responder")(responder_command)
DEFAULT_LEDGER_URL = "sqlite:///run/ledger.sqlite"
LedgerOpt = Annotated[
    str,
    typer.Option(
        envvar="TRADEGUARD_LEDGER_URL",
        help="Ledger: sqlite:///path (replicas on one host) or postgresql://... Leave a "
        "PostgreSQL password out (a command line is public): libpq reads PGPASSWORD or "
        "~/.pgpass (PGPASSFILE), or give the whole URL by --ledger-url-file.",
    ),
]
LedgerFileOpt = Annotated[
    Path | None,
    typer.Option(
        envvar="TRADEGUARD_LEDGER_URL_FILE",
        help="File holding the ledger URL (a Docker secret, a 0600 file), instead of --ledger-url.",
    ),
]


def _ledger_url(ctx: typer.Context | None, url: str, url_file: Path | None) -> str:
    """The ledger URL from ``--ledger-url`` or ``--ledger-url-file`` (or TRADEGUARD_LEDGER_URL
    and TRADEGUARD_LEDGER_URL_FILE): one of the two, and the command line wins over the
    environment (tradeguard.settings_files); ConfigError if one source gives both."""
    from tradeguard.settings_files import resolve_one

    rank = {"COMMANDLINE": 2, "ENVIRONMENT": 1}

    def given(name: str, value: object, default: object) -> int:
        source = ctx.get_parameter_source(name) if ctx is not None else None
        if source is None:  # called outside the command line: given unless the default
            return 0 if value == default else 2
        return rank.get(source.name, 0)

    url_rank = given("ledger_url", url, DEFAULT_LEDGER_URL)
    file_rank = given("ledger_url_file", url_file, None)
    if file_rank == 0 or url_rank > file_rank:
        return url
    found = resolve_one(
        url if url_rank == file_rank else None, url_file, "--ledger-url", "--ledger-url-file"
    )
    assert found is not None  # url_file is given
    return found


console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file.")]
RedisOpt = Annotated[
    str | None,
    typer.Option("--redis-url", help="Redis URL for every layer (overrides TRADEGUARD_REDIS_URL)."),
]


BrokerKnobOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--broker-knob",
        help="Paper broker fault knob NAME=VALUE, repeatable (e.g. late_fill_rate=0.5, "
        "visibility_delay=0.2, reconnect_block=3, forgiving=1); see tradeguard.engine.paper.",
    ),
]


def _broker_knobs(latency: float, extra: list[str] | None, **more: float) -> BrokerKnobs:
    """Knobs from the dedicated options and the NAME=VALUE list; a bad one is a clear error."""
    from tradeguard.engine.paper import BrokerKnobs

    knobs = BrokerKnobs(latency=latency)
    values: dict[str, object] = dict(more)
    for item in extra or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise _fail(f"--broker-knob wants NAME=VALUE, got {item!r}")
        values[name.strip()] = value.strip()
    try:
        knobs.update(values)
    except ValueError as exc:
        raise _fail(f"--broker-knob: {exc}") from None
    return knobs


def _settings(config: Path | None, redis_url: str | None, **extra: object) -> Settings:
    overrides = {k: v for k, v in {"redis_url": redis_url, **extra}.items() if v is not None}
    return load_settings(config, **overrides)


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as one ``error:`` line (never wrapped, never read as markup)."""
    err.print(Text("error: ", style="red") + Text(message), soft_wrap=True)
    return typer.Exit(code)


def _wait_for_signal() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so long-running commands stop cleanly."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _stop_on_signals() -> tuple[threading.Event, list[str]]:
    """Like ``_wait_for_signal``, and the names of the signals received (SIGINT, ...), so a
    command can say it was interrupted rather than finished."""
    stop = threading.Event()
    received: list[str] = []

    def handle(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)
    return stop, received


@app.command()
def engine(
    config: ConfigOpt = None,
    redis_url: RedisOpt = None,
    consumer: Annotated[str, typer.Option(help="Consumer name of this replica.")] = "engine-1",
    metrics_port: Annotated[int | None, typer.Option(help="Port of /metrics (0: any).")] = None,
    duckdb_path: Annotated[Path | None, typer.Option(help="DuckDB file.")] = None,
    broker_latency: Annotated[float, typer.Option(help="Paper broker latency, seconds.")] = 0.002,
    failure_rate: Annotated[float, typer.Option(help="Paper broker failure rate.")] = 0.0,
    broker_book: Annotated[
        Path | None, typer.Option(help="SQLite order book shared by replicas on one host.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the paper broker's faults.")] = 0,
    broker_knob: BrokerKnobOpt = None,
    no_persist: Annotated[bool, typer.Option("--no-persist", help="Skip DuckDB.")] = False,
) -> None:
    """Run one engine replica until SIGINT/SIGTERM: consume signals, execute, record results."""
    from tradeguard.engine.service import EngineOptions, EngineService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = _settings(config, redis_url, duckdb_path=duckdb_path)
        options = EngineOptions(
            consumer=consumer,
            seed=seed,
            broker_book=broker_book,
            persist=not no_persist,
            knobs=_broker_knobs(broker_latency, broker_knob, failure_rate=failure_rate),
            metrics_port=metrics_port,
        )
        stop = _wait_for_signal()
        svc = EngineService(settings, options).start()
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    console.print(f"engine {consumer} running; metrics at {svc.metrics_url}")
    stop.wait()
    svc.stop()
    console.print(f"engine {consumer} stopped after {svc.engine.stats.processed} signals")


@app.command("docker-exporter")
def docker_exporter(
    docker_socket: Annotated[
        str, typer.Option(help="The Docker engine's unix socket (read-only use: GET only).")
    ] = "/var/run/docker.sock",
    host: Annotated[str, typer.Option(help="Address /metrics listens on.")] = LOOPBACK,
    port: Annotated[int, typer.Option(help="Port of /metrics (0: any).")] = 9468,
) -> None:
    """Export what cAdvisor cannot see (health-check status, exit codes, missing mounts, from
    docker inspect) on /metrics until SIGINT/SIGTERM; Prometheus job `docker`."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    from tradeguard.metrics.docker import DockerCollector, DockerEngine, DockerUnavailable
    from tradeguard.metrics.http import MetricsServer

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    engine_api = DockerEngine(docker_socket)
    collector = DockerCollector(engine_api)
    registry.register(collector)
    try:
        count = len(collector.read())
        console.print(f"Docker engine at {docker_socket}: {count} containers")
    except DockerUnavailable as exc:
        err.print(
            f"[yellow]warning:[/] {exc}; tradeguard_docker_engine_up stays 0 until it answers"
        )
    stop = _wait_for_signal()
    try:
        server = MetricsServer(registry, host, port).start()
    except OSError as exc:
        raise _fail(f"cannot listen on {host}:{port}: {exc}") from None
    console.print(f"docker exporter running; metrics at {server.url}")
    stop.wait()
    server.stop()
    engine_api.close()


@app.command()
def publish(
    account: Annotated[str, typer.Option(help="Account the signal trades for.")],
    symbol: Annotated[str, typer.Option(help="Instrument, e.g. EURUSD.")],
    action: Annotated[str, typer.Option(help="buy, sell or close.")],
    volume: Annotated[float, typer.Option(help="Lots, > 0.")],
    price: Annotated[float | None, typer.Option(help="Price the strategy saw.")] = None,
    signal_id: Annotated[str | None, typer.Option("--id", help="Unique id (default: new).")] = None,
    config: ConfigOpt = None,
    redis_url: RedisOpt = None,
) -> None:
    """Publish one signal; prints its stream entry id. Exit 1 if it was not queued."""
    from tradeguard.bus.connection import check_credentials, make_client
    from tradeguard.bus.keys import Keys
    from tradeguard.bus.signal_stream import SignalStream
    from tradeguard.config import Layer

    try:
        settings = _settings(config, redis_url)
        sig = Signal(
            account=account,
            symbol=symbol,
            action=action,
            volume=volume,
            price=price,
            signal_id=signal_id or uuid.uuid4().hex,
        )
        url = settings.layer_url(Layer.SIGNAL_STREAM)
        client = make_client(url)
        check_credentials(client, url, [Layer.SIGNAL_STREAM.value])
        stream = SignalStream(
            client, Keys(settings.key_prefix), max_bytes=settings.signal_max_bytes
        )
        entry = stream.publish(sig)
    except InvalidSignal as exc:
        raise _fail(f"invalid signal ({exc.reason}): {exc.detail}") from None
    except PublishError as exc:
        hint = (
            f"; it may still have been queued: publishing again with --id {sig.signal_id} is safe"
            if exc.maybe_queued
            else ""
        )
        raise _fail(f"not published: {exc}{hint}", code=1) from None
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    console.print(f"published {sig.signal_id} as entry {entry.decode()}")


@app.command()
def generate(
    rate: Annotated[float, typer.Option(help="Signals per second.")] = 50.0,
    count: Annotated[int | None, typer.Option(help="Stop after this many accepted.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    invalid_share: Annotated[float, typer.Option(help="Share of malformed entries.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    config: ConfigOpt = None,
    redis_url: RedisOpt = None,
) -> None:
    """Publish a steady stream of generated signals (load and demos).

    Ends when --count signals were accepted, when --duration has passed, or on SIGINT/SIGTERM
    (Ctrl-C), whichever comes first, and prints what was published.
    """
    from tradeguard.bus.connection import check_credentials, make_client
    from tradeguard.bus.keys import Keys
    from tradeguard.bus.signal_stream import SignalStream
    from tradeguard.config import Layer
    from tradeguard.engine.generator import GeneratorConfig, SignalGenerator

    if rate <= 0:
        raise _fail("--rate must be > 0")
    # Installed first, so a Ctrl-C at any point below ends the command with its summary.
    stop, stopped_by = _stop_on_signals()
    try:
        settings = _settings(config, redis_url)
        url = settings.layer_url(Layer.SIGNAL_STREAM)
        client = make_client(url)
        check_credentials(client, url, [Layer.SIGNAL_STREAM.value])
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    stream = SignalStream(client, Keys(settings.key_prefix), max_bytes=settings.signal_max_bytes)
    gen = SignalGenerator(
        stream, GeneratorConfig(rate=rate, invalid_share=invalid_share, seed=seed)
    )
    # A daemon timer, cancelled on the way out: a pending one must not keep the process
    # alive for the rest of --duration once --count is reached or Ctrl-C stopped the run.
    timer = threading.Timer(duration, stop.set) if duration is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        report = gen.run(stop, limit=count)
    finally:
        stop.set()
        if timer is not None:
            timer.cancel()
        client.close()
    how = f" (stopped by {stopped_by[0]})" if stopped_by else ""
    console.print(
        f"published {len(report.published)} signals, {report.invalid} malformed, "
        f"{report.errors} publish errors"
        + (f" (last: {report.last_error})" if report.errors else "")
        + how
    )
    if report.errors:
        raise typer.Exit(1)


@app.command()
def demo(
    duration: Annotated[
        float, typer.Option(help="Minimum seconds to run (the tour takes what its scenarios need).")
    ] = 0.0,
    rate: Annotated[float, typer.Option(help="Signals per second of the workload.")] = 20.0,
    scenarios: Annotated[
        str, typer.Option(help="Comma-separated scenarios (see `tradeguard chaos list`).")
    ] = ",".join(DEFAULT_TOUR),
    resolve_cap: Annotated[
        float,
        typer.Option(help="Longest wait for a resolved notice after a fault is undone, seconds."),
    ] = 120.0,
    run_dir: Annotated[Path, typer.Option(help="Where the stack keeps data and logs.")] = Path(
        "run/demo"
    ),
    compare_remediation: Annotated[
        bool,
        typer.Option(
            help="Run each scenario that healed again with its action turned off, and show "
            "how long it then stays firing (a column 'remediation off'; takes longer)."
        ),
    ] = False,
) -> None:
    """Bring up the whole stack under a steady workload, tour the fault scenarios, and end
    with a table: expected alert, seconds to fire and to resolve, what healed it,
    notifications, signals lost or duplicated."""
    from tradeguard.chaos.tour import run_tour

    names = [s.strip() for s in scenarios.split(",") if s.strip()]
    if rate <= 0 or not names:
        raise _fail("--rate must be > 0 and --scenarios must name at least one scenario")
    try:
        code = run_tour(
            console,
            run_dir,
            names,
            rate,
            resolve_cap,
            min_duration=duration,
            compare_remediation=compare_remediation,
        )
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(code)


@app.command("engine-demo")
def engine_demo(
    duration: Annotated[float, typer.Option(help="Seconds to run.")] = 30.0,
    rate: Annotated[float, typer.Option(help="Signals per second.")] = 100.0,
    run_dir: Annotated[Path, typer.Option(help="Where processes keep data and logs.")] = Path(
        "run/engine-demo"
    ),
) -> None:
    """Just the trade path: redis-server, one engine and a generator, with a live view."""
    from tradeguard.demo import DemoOptions, run_demo

    if duration <= 0 or rate <= 0:
        raise _fail("--duration and --rate must be > 0")
    try:
        code = run_demo(DemoOptions(duration=duration, rate=rate, run_dir=run_dir), console)
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(code)


RunDirOpt = Annotated[Path, typer.Option(help="The stack's run directory.")]


@app.command()
def up(
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    profile: Annotated[
        str,
        typer.Option(
            help="Rules profile: default (shipped rules) or fast (`for` > 30 s capped at 10 s)."
        ),
    ] = "default",
    redis_per_layer: Annotated[
        bool,
        typer.Option("--redis-per-layer", help="One redis-server per layer instead of one shared."),
    ] = False,
    replicas: Annotated[int, typer.Option(help="Engine replicas (HA).")] = 2,
    workload: Annotated[float, typer.Option(help="Generated signals per second (0: none).")] = 10.0,
    detach: Annotated[bool, typer.Option("--detach", help="Run in the background.")] = False,
) -> None:
    """Start Redis, exporters, engine replicas, the responder, Prometheus and Alertmanager."""
    from tradeguard.stack.commands import up as stack_up
    from tradeguard.stack.render import PROFILES

    if profile not in PROFILES or replicas < 1 or workload < 0:
        raise _fail(f"--profile must be one of {PROFILES}, --replicas >= 1, --workload >= 0")
    try:
        code = stack_up(console, run_dir, profile, not redis_per_layer, replicas, workload, detach)
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(code)


@app.command()
def down(run_dir: RunDirOpt = DEFAULT_RUN_DIR) -> None:
    """Stop a stack started with `tradeguard up --detach`."""
    from tradeguard.stack.commands import down as stack_down

    try:
        raise typer.Exit(stack_down(console, run_dir))
    except TradeguardError as exc:
        raise _fail(str(exc)) from None


@app.command()
def status(run_dir: RunDirOpt = DEFAULT_RUN_DIR) -> None:
    """What runs, which targets are up and what is firing (exit 1 if anything is down)."""
    from tradeguard.stack.commands import status as stack_status

    raise typer.Exit(stack_status(console, run_dir))


@app.command()
def check(
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    prometheus_url: Annotated[
        str | None, typer.Option(help="Prometheus to check (default: the running stack's).")
    ] = None,
) -> None:
    """Verify that Prometheus loaded every rule file with no rule in error and every target
    is up."""
    from tradeguard.stack.commands import check as stack_check
    from tradeguard.stack.commands import running_layout

    url = prometheus_url
    if url is None:
        layout = running_layout(run_dir)
        if layout is None:
            raise _fail(f"no running stack in {run_dir}; pass --prometheus-url")
        url = layout.prometheus_url
    try:
        raise typer.Exit(stack_check(console, url))
    except TradeguardError as exc:
        raise _fail(str(exc)) from None


@alerts_app.command("test")
def alerts_test(
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each notice.")] = 30.0,
) -> None:
    """Post a test alert through Alertmanager's API and wait until the responder has it,
    then resolve it and wait for the resolved notice (seed 003's end-to-end check).

    The responder is asked first, with the stack's token: when it is down or refuses the
    token, no test alert is posted and the reason is one line (exit 1); so is it when the
    responder goes away, or its token changes, mid-test.
    """
    from tradeguard.stack.commands import alerts_test as run_alerts_test
    from tradeguard.stack.commands import running_layout

    layout = running_layout(run_dir)
    if layout is None:
        raise _fail(f"no running stack in {run_dir}; start one with `tradeguard up`")
    try:
        code = run_alerts_test(console, layout, timeout)
    except ResponderUnavailable as exc:
        raise _fail(str(exc), code=1) from None
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(code)


@chaos_app.command("list")
def chaos_list() -> None:
    """The fault scenarios, the alert each must raise, and how it is undone."""
    from rich.table import Table

    from tradeguard.chaos.scenarios import SCENARIOS

    table = Table("scenario", "expected alert", "fault and undo")
    for s in SCENARIOS.values():
        table.add_row(
            s.name, s.alert, s.description + (" (fast profile)" if s.needs_for_profile else "")
        )
    console.print(table)


@chaos_app.command("run")
def chaos_run(
    name: Annotated[str, typer.Argument(help="Scenario name (see `tradeguard chaos list`).")],
    run_dir: RunDirOpt = Path("run/chaos"),
    resolve_cap: Annotated[float, typer.Option(help="Longest wait for resolution, s.")] = 180.0,
) -> None:
    """Bring up a stack, inject one scenario, wait for its alert and its resolution."""
    from tradeguard.chaos.tour import run_tour

    try:
        raise typer.Exit(run_tour(console, run_dir, [name], 20.0, resolve_cap))
    except TradeguardError as exc:
        raise _fail(str(exc)) from None


@app.command()
def coordinator(
    ctx: typer.Context,
    replica_id: Annotated[str, typer.Option(help="Unique id of this replica.")],
    ledger_url: LedgerOpt = DEFAULT_LEDGER_URL,
    ledger_url_file: LedgerFileOpt = None,
    config: ConfigOpt = None,
    redis_url: RedisOpt = None,
    metrics_port: Annotated[int | None, typer.Option(help="Port of /metrics (0: any).")] = None,
    ttl: Annotated[float, typer.Option(help="Lease TTL, seconds.")] = 5.0,
    renew_interval: Annotated[float, typer.Option(help="Seconds between renewals.")] = 1.0,
    renew_deadline: Annotated[
        float, typer.Option(help="Stop new work when the last renewal is older than this.")
    ] = 3.0,
    broker_latency: Annotated[float, typer.Option(help="Paper broker latency, seconds.")] = 0.002,
    broker_book: Annotated[
        Path | None, typer.Option(help="SQLite order book shared by replicas on one host.")
    ] = None,
    broker_knob: BrokerKnobOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the paper broker's faults.")] = 0,
    no_persist: Annotated[bool, typer.Option("--no-persist", help="Skip DuckDB.")] = False,
) -> None:
    """Run one HA replica (engine included) until SIGINT/SIGTERM; it executes only as leader."""
    from tradeguard.engine.service import EngineOptions
    from tradeguard.ha.coordinator import HAConfig
    from tradeguard.replica import CoordinatorService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        ledger_url = _ledger_url(ctx, ledger_url, ledger_url_file)
        settings = _settings(config, redis_url)
        ha = HAConfig(
            replica_id, ttl=ttl, renew_interval=renew_interval, renew_deadline=renew_deadline
        )
        options = EngineOptions(
            knobs=_broker_knobs(broker_latency, broker_knob),
            seed=seed,
            broker_book=broker_book,
            persist=not no_persist,
            metrics_port=metrics_port,
        )
        if not no_persist:
            if not replica_id or "/" in replica_id or replica_id in (".", ".."):
                raise _fail(f"--replica-id {replica_id!r} must be usable as a file name")
            settings = settings.model_copy(
                update={"duckdb_path": settings.duckdb_path.with_name(f"{replica_id}.duckdb")}
            )
        stop = _wait_for_signal()
        svc = CoordinatorService(settings, ha, ledger_url, options).start()
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    status = svc.status()
    console.print(
        f"replica {replica_id} running (recovery {status['recovery']}); "
        f"metrics at {svc.metrics_url}"
    )
    stop.wait()
    svc.stop()
    console.print(f"replica {replica_id} stopped")


@ha_app.command("status")
def ha_status(
    ctx: typer.Context,
    ledger_url: LedgerOpt = DEFAULT_LEDGER_URL,
    ledger_url_file: LedgerFileOpt = None,
    config: ConfigOpt = None,
    redis_url: RedisOpt = None,
) -> None:
    """Leader, epoch, each replica's heartbeat age, mode, and whether Redis and DB disagree."""
    from rich.table import Table

    from tradeguard.bus.connection import make_client
    from tradeguard.bus.keys import Keys
    from tradeguard.config import Layer
    from tradeguard.ha.ledger import open_ledger
    from tradeguard.ha.status import read_status

    try:
        ledger_url = _ledger_url(ctx, ledger_url, ledger_url_file)
        settings = _settings(config, redis_url)
        ledger = open_ledger(ledger_url)
        client = make_client(settings.layer_url(Layer.INSTANCE_STATE), socket_timeout=0.5)
        st = read_status(ledger, client, Keys(settings.key_prefix).leader)
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    lead = st.leadership
    console.print(
        f"leader (ledger): [bold]{st.db_leader or 'none'}[/]  epoch {lead.epoch}  "
        f"lease {max(0.0, lead.remaining()):.1f}s left"
    )
    console.print(
        f"leader (Redis):  {st.redis_holder or 'none'}"
        + ("" if st.redis_reachable else "  [yellow](Redis unreachable)[/]")
    )
    console.print(
        f"mode: {st.mode}   split-brain: " + ("[red]yes[/]" if st.split_brain else "[green]no[/]")
    )
    table = Table("replica", "role", "epoch", "heartbeat age", "mode")
    for beat in st.replicas:
        table.add_row(
            beat.replica,
            "leader" if beat.is_leader else "follower",
            str(beat.epoch),
            f"{beat.age_seconds:.1f}s",
            beat.mode,
        )
    console.print(table)


def _trade_state_client(config: Path | None, redis_url: str | None) -> tuple[Redis, Keys]:
    """The trade-state client; RedisAuthError (a TradeguardError) if Redis refuses its
    password, so that is reported as such, not as "unreachable"."""
    from tradeguard.bus.connection import check_credentials, make_client
    from tradeguard.bus.keys import Keys
    from tradeguard.config import Layer

    settings = _settings(config, redis_url)
    url = settings.layer_url(Layer.TRADE_STATE)
    client = make_client(url)
    check_credentials(client, url, [Layer.TRADE_STATE.value])
    return client, Keys(settings.key_prefix)


def _print_verdict(verdict: Verdict) -> None:
    import time

    age = time.time() - verdict.checked_at
    if not verdict.mismatches:
        console.print(f"[green]consistent[/]: Redis agrees with DuckDB (checked {age:.0f}s ago)")
        return
    console.print(
        f"[red]{len(verdict.mismatches)} mismatched account(s)[/] (checked {age:.0f}s ago)"
    )
    for line in verdict.mismatches:
        console.print(f"  {line}")


@state_app.command("check")
def state_check(config: ConfigOpt = None, redis_url: RedisOpt = None) -> None:
    """Show the writing engine's last Redis-vs-DuckDB verdict. Exit 1 if accounts mismatch."""
    from tradeguard.bus.connection import CONNECTION_ERRORS
    from tradeguard.store.consistency import read_verdict

    try:
        redis, keys = _trade_state_client(config, redis_url)
        verdict = read_verdict(redis, keys)
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    except CONNECTION_ERRORS as exc:
        raise _fail(f"trade-state Redis unreachable: {exc}") from None
    if verdict is None:
        raise _fail("no verdict yet: no engine has checked (is a leader running and persisting?)")
    _print_verdict(verdict)
    if verdict.mismatches:
        raise typer.Exit(1)


@state_app.command("resync")
def state_resync(
    config: ConfigOpt = None,
    redis_url: RedisOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the engine's answer.")] = 15.0,
) -> None:
    """Rebuild accounts Redis lost from the fills in DuckDB (the writing engine does it,
    between two signals, then answers).

    Fills applied after the loss are counted too; an account DuckDB lacks fills for is left
    as it is and reported. See docs/runbooks/TradeStateInconsistent.md. Diverged accounts are
    listed, not changed.
    """
    from tradeguard.bus.connection import CONNECTION_ERRORS
    from tradeguard.process import wait_until
    from tradeguard.store.consistency import read_verdict, request_resync

    try:
        redis, keys = _trade_state_client(config, redis_url)
        request = request_resync(redis, keys)
        console.print("resync requested; waiting for the writing engine to carry it out")

        def answered() -> bool:
            verdict = read_verdict(redis, keys)
            return verdict is not None and verdict.resync_done == request

        wait_until(answered, timeout, "the writing engine to answer", interval=0.2)
        verdict = read_verdict(redis, keys)
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    except CONNECTION_ERRORS as exc:
        raise _fail(f"trade-state Redis unreachable: {exc}") from None
    except TimeoutError:
        raise _fail(
            f"no engine answered within {timeout:.0f}s: is a leader running and persisting? "
            "(tradeguard ha status); the request stays queued for it"
        ) from None
    assert verdict is not None
    restored = ", ".join(verdict.restored) or "none"
    console.print(f"restored from DuckDB: {restored}")
    if verdict.resync_problem:
        console.print(f"not restored: {verdict.resync_problem}")
    _print_verdict(verdict)
    if verdict.mismatches or verdict.resync_problem:
        raise typer.Exit(1)


@instance_app.command("restart")
def instance_restart(
    instance: Annotated[str, typer.Argument(help="The instance id, as in its alert's labels.")],
    config: ConfigOpt = None,
    redis_url: RedisOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the engine's answer.")] = 15.0,
) -> None:
    """Restart an instance with a fresh set of recovery attempts (its engine's supervisor
    does it, and answers); works whether or not remediation is turned off.

    For an instance the supervisor stopped (InstanceRecoveryFailed) once its cause is fixed:
    see docs/runbooks/InstanceRecoveryFailed.md. Exit 1 if no engine restarted it.
    """
    from tradeguard.bus.connection import CONNECTION_ERRORS, check_credentials, make_client
    from tradeguard.bus.keys import Keys
    from tradeguard.config import Layer
    from tradeguard.instances.restart import InstanceRestartError, restart_by_hand

    try:
        settings = _settings(config, redis_url)
        url = settings.layer_url(Layer.SIGNAL_STREAM)
        client = make_client(url)
        check_credentials(client, url, [Layer.SIGNAL_STREAM.value])
        console.print(f"restart of {instance} requested; waiting for its engine to answer")
        where = restart_by_hand(client, Keys(settings.key_prefix), instance, timeout)
    except InstanceRestartError as exc:
        raise _fail(str(exc), code=1) from None
    except TradeguardError as exc:
        raise _fail(str(exc)) from None
    except CONNECTION_ERRORS as exc:
        raise _fail(f"signal-layer Redis unreachable: {exc}") from None
    console.print(f"restarted: {where}")


@rules_app.command("check")
def rules_check(
    repo: Annotated[Path | None, typer.Option(help="Repository root (default: found).")] = None,
) -> None:
    """Run promtool/amtool checks and the rule consistency checks, with a readable report."""
    from tradeguard.rulecheck.report import main as rulecheck_main

    raise typer.Exit(rulecheck_main(repo))


@rules_app.command("export")
def rules_export(
    output_format: Annotated[
        str,
        typer.Option("--format", help="Output format; prometheus-operator is the one there is."),
    ] = "prometheus-operator",
    out: Annotated[
        Path,
        typer.Option(help="Directory for the files, one per object (created if missing)."),
    ] = Path("build/prometheus-operator"),
    namespace: Annotated[
        str | None,
        typer.Option(
            help="metadata.namespace of every object (default: none, kubectl -n decides)."
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            help="KEY=VALUE label on every object, for the operator's ruleSelector and "
            "alertmanagerConfigSelector; repeatable; replaces the default "
            "app.kubernetes.io/part-of=tradeguard.",
        ),
    ] = None,
    runbook_base_url: Annotated[
        str | None,
        typer.Option(
            help="Make runbook_url annotations links, URL/runbooks/<Alert>, as the local "
            "stack does (default: keep the repository paths)."
        ),
    ] = None,
    secret_name: Annotated[
        str, typer.Option(help="The Secret the AlertmanagerConfig takes its credentials from.")
    ] = "tradeguard-alertmanager",
    repo: Annotated[Path | None, typer.Option(help="Repository root (default: found).")] = None,
) -> None:
    """Export the alert rules and Alertmanager routing as prometheus-operator objects.

    Writes one YAML file per object into --out: a PrometheusRule (monitoring.coreos.com/v1)
    per deploy/prometheus/rules/*.rules.yml, groups and rules unchanged; an
    AlertmanagerConfig (monitoring.coreos.com/v1alpha1) with the route tree, receivers and
    inhibit rules of deploy/alertmanager/alertmanager.yml; and a ConfigMap with its
    notification templates. Apply the directory with kubectl apply -f.

    No secret is copied: credentials and webhook URLs become references to keys of one
    Kubernetes Secret (--secret-name), which the command lists for you to create.

    Namespace scope: the operator adds a matcher namespace="<the AlertmanagerConfig's
    namespace>" to the AlertmanagerConfig's top route (and forces continue: true on it) and to
    both sides of its inhibit rules, so only alerts with that label reach these routes. Set
    enforcedNamespaceLabel on the Prometheus object, or alertmanagerConfigMatcherStrategy
    type None on the Alertmanager object.

    A setting with no AlertmanagerConfig equivalent stops the export with its name, except
    global.resolve_timeout and templates, which are noted in the output file. Exit 2 on bad
    input, 1 if the files cannot be written.
    """
    from tradeguard.k8sexport.export import ExportOptions, check_format, export, summary
    from tradeguard.k8sexport.meta import parse_labels

    try:
        check_format(output_format)
        options = ExportOptions(
            repo=repo,
            out_dir=out,
            namespace=namespace,
            labels=parse_labels(label or []),
            runbook_base_url=runbook_base_url,
            secret_name=secret_name,
        )
        result = export(options, lambda line: console.print(Text(line), soft_wrap=True))
    except TradeguardError as exc:  # ExportError included: bad input, named on one line
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write {out}: {exc.strerror or exc}", code=1) from None
    for line in summary(result):
        console.print(Text(line), soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
