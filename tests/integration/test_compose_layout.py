"""deploy/docker-compose.yml: the production layout stays consistent with the rest of deploy/.

No Docker engine is needed (nor assumed: CI has none). Each check rebuilds what a container would
see from the compose file itself (its mounts, its command, its environment) and hands it to the
real tool that reads it: promtool and amtool on the mounted configuration, the Debian builds of
the exporters, Prometheus and Alertmanager for the flags given to their images, tradeguard's own
CLI parser and settings for the tradeguard services. A renamed flag, a target that names no
service, a mount of a file that moved, or a webhook nobody listens on fails here.

No password may be in the file or in any argv (``ps`` on the host shows every container's): the
shell scripts that read a secret run here for real, against the Debian redis-server, redis-cli
and redis_exporter, with every program they call behind a shim that records its argv.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
import yaml
from typer.core import TyperGroup
from typer.main import get_command

from tradeguard.bus.keys import Keys
from tradeguard.cli import app
from tradeguard.config import Layer, Settings, load_settings
from tradeguard.metrics.vocabulary import LAYERS
from tradeguard.net import LOOPBACK, http_ok
from tradeguard.process.managed import ManagedProcess, wait_until
from tradeguard.process.ports import free_port
from tradeguard.process.services import require_binary
from tradeguard.responder.settings import ResponderSettings
from tradeguard.rulecheck.paths import find_repo_root

DEPLOY = find_repo_root(Path(__file__).parent) / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
# What `docker compose` would interpolate from deploy/.env (compose/env.example lists them).
ENV = {"TRADEGUARD_PG_PASSWORD": "test-password", "TRADEGUARD_BIND_ADDRESS": "127.0.0.1"}
# Services whose image runs a program that Debian also ships: compose service -> Debian binary.
DEBIAN_BUILDS = {
    "prometheus": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "node-exporter": "prometheus-node-exporter",
    **{
        f"redis-exporter-{layer.replace('_', '-')}": "prometheus-redis-exporter" for layer in LAYERS
    },
}
TRADEGUARD_SERVICES = ("engine-a", "engine-b", "responder", "docker-exporter")
SECRETS_DIR = "/run/secrets/"
# Secrets the user creates (compose/secrets/README.md), never committed.
USER_SECRETS = DEPLOY / "compose" / "secrets"

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?::(?P<op>[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` against :data:`ENV`, and
    ``$$`` for a literal ``$``."""

    def value(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        if name in ENV:
            return ENV[name]
        if op == "-":
            return str(arg)
        raise AssertionError(
            f"{name} is used in the compose file but missing from compose/env.example"
        )

    return _VARIABLE.sub(value, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(interpolate(COMPOSE_FILE.read_text()))
    assert isinstance(loaded, dict) and isinstance(loaded.get("services"), dict)
    return loaded


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def args_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(a) for a in command]


def argv_texts(service: dict[str, Any]) -> dict[str, list[str]]:
    """What ends up in an argv: the entrypoint, the command, the health check (each a list)."""
    texts: dict[str, list[str]] = {}
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        texts[key] = [value] if isinstance(value, str) else [str(a) for a in value]
    test = (service.get("healthcheck") or {}).get("test") or []
    texts["healthcheck"] = [test] if isinstance(test, str) else [str(a) for a in test]
    return texts


def secret_paths(service: dict[str, Any]) -> set[str]:
    """Every /run/secrets/<name> the service's argv or environment names."""
    environment = service.get("environment") or {}
    texts = [t for ts in argv_texts(service).values() for t in ts]
    texts += [str(v) for v in environment.values()] if isinstance(environment, dict) else []
    return {m for t in texts for m in re.findall(rf"{SECRETS_DIR}[\w.-]+", t)}


def flag(args: list[str], name: str) -> str:
    """The value of ``--name=value`` (or ``-name=value``) in ``args``."""
    for arg in args:
        key, _, value = arg.partition("=")
        if key.lstrip("-") == name:
            return value
    raise AssertionError(f"no {name} in {args}")


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(source, container path) of each relative bind mount (from deploy/, or the repository
    around it: the console's runbooks are docs/runbooks)."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith(("./", "../")):
            mounts.append((DEPLOY / source, target))
    return mounts


def container_tree(service: dict[str, Any], root: str, into: Path) -> Path:
    """Copy what the bind mounts put under ``root`` into ``into``, as the container sees it."""
    for source, target in bind_mounts(service):
        if target != root and not target.startswith(root + "/"):
            continue
        dest = into / target.removeprefix(root).lstrip("/")
        if source.is_dir():
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, dest)
    return into


def exposed(service: dict[str, Any]) -> set[int]:
    return {int(p) for p in service.get("expose", [])}


def scrape_targets() -> dict[str, list[tuple[str, int, dict[str, str]]]]:
    """job file name -> (host, port, labels) of every target in deploy/compose/targets."""
    jobs = {}
    for path in sorted((DEPLOY / "compose" / "targets").glob("*.yml")):
        groups = yaml.safe_load(path.read_text()) or []
        entries = []
        for group in groups:
            for target in group["targets"]:
                host, _, port = target.rpartition(":")
                entries.append((host, int(port), dict(group.get("labels", {}))))
        jobs[path.stem] = entries
    return jobs


def test_every_image_is_pinned_and_tradeguard_is_built_here(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        image = str(service.get("image", ""))
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image ({image!r})"
        if name in TRADEGUARD_SERVICES:
            assert service["build"]["dockerfile"] == "Dockerfile", name
            assert (COMPOSE_FILE.parent / service["build"]["context"] / "Dockerfile").is_file()


def test_mounts_secrets_and_dependencies_name_things_that_exist(compose: dict[str, Any]) -> None:
    declared_volumes = set(compose.get("volumes") or {})
    for name, service in services(compose).items():
        for source, _target in bind_mounts(service):
            assert source.exists(), f"{name} mounts {source}, which is not in the repository"
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith(("./", "../", "/")):
                assert source in declared_volumes, f"{name}: volume {source} is not declared"
        for dependency in service.get("depends_on", []):
            assert dependency in services(compose), f"{name} depends on unknown {dependency}"
        mode = service.get("network_mode", "")
        if mode.startswith("service:"):
            assert mode.removeprefix("service:") in services(compose), name
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: secret {secret} is not declared"
        for path in secret_paths(service):
            assert path.removeprefix(SECRETS_DIR) in service.get("secrets", []), (
                f"{name} reads {path}, a secret it does not mount"
            )
    documented = (USER_SECRETS / "README.md").read_text()
    for name, secret in compose["secrets"].items():
        path = (DEPLOY / secret["file"]).resolve()
        if path.parent == USER_SECRETS:  # created by the user: documented, never committed
            assert f"`{path.name}`" in documented, f"compose/secrets/README.md: explain {name}"
            ignored = subprocess.run(
                ["git", "check-ignore", "-q", str(path)], cwd=DEPLOY, check=False
            )
            assert ignored.returncode == 0, f"{secret['file']} must be git-ignored"
        else:
            assert path.is_file(), f"secret {name}: {secret['file']} is missing"


def test_every_scrape_target_is_a_port_a_service_exposes(compose: dict[str, Any]) -> None:
    shipped = {p.stem for p in (DEPLOY / "prometheus" / "targets").glob("*.yml")}
    jobs = scrape_targets()
    assert set(jobs) == shipped, "compose/targets must cover exactly the shipped file_sd files"
    scraped: set[tuple[str, int]] = set()
    for job, entries in jobs.items():
        for host, port, _labels in entries:
            if host == "localhost":  # Prometheus scraping itself
                assert job == "prometheus", f"{job}: localhost is Prometheus's own container"
                host = "prometheus"
            assert host in services(compose), f"{job}: {host} is not a compose service"
            assert port in exposed(services(compose)[host]), f"{job}: {host} does not expose {port}"
            scraped.add((host, port))
    for name, service in services(compose).items():
        for port in exposed(service):
            assert (name, port) in scraped, f"{name}:{port} is exposed but no job scrapes it"


def test_each_redis_layer_has_its_redis_and_exporter_with_the_stream_checks(
    compose: dict[str, Any],
) -> None:
    keys = Keys(Settings().key_prefix)
    streams = {"signal_stream": keys.signals, "result_stream": keys.results}
    targets = {host: labels for host, _port, labels in scrape_targets()["redis"]}
    for layer in LAYERS:
        redis, exporter = (
            f"redis-{layer.replace('_', '-')}",
            f"redis-exporter-{layer.replace('_', '-')}",
        )
        assert redis in services(compose) and exporter in services(compose), layer
        args = args_of(services(compose)[exporter])
        assert urlsplit(flag(args, "redis.addr")).hostname == redis
        assert targets[exporter] == {"layer": layer, "service": "redis"}
        if layer in streams:
            assert flag(args, "check-streams") == streams[layer]
        assert "--appendonly" in args_of(services(compose)[redis]), f"{redis} must persist"


@pytest.mark.parametrize("service_name", sorted(DEBIAN_BUILDS))
def test_flags_given_to_an_image_exist_in_its_program(
    compose: dict[str, Any], service_name: str
) -> None:
    binary = require_binary(DEBIAN_BUILDS[service_name])
    run = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    help_text = run.stdout + run.stderr
    for arg in args_of(services(compose)[service_name]):
        name = arg.split("=")[0]
        assert re.search(rf"(^|\s){re.escape(name)}(\s|=|$)", help_text, re.M), (
            f"{service_name}: {binary} has no flag {name}"
        )


def test_prometheus_as_mounted_passes_promtool(compose: dict[str, Any], tmp_path: Path) -> None:
    prometheus = services(compose)["prometheus"]
    root = container_tree(prometheus, "/etc/prometheus", tmp_path / "etc-prometheus")
    config = root / flag(args_of(prometheus), "config.file").removeprefix("/etc/prometheus/")
    run = subprocess.run(
        [require_binary("promtool"), "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout + run.stderr


def test_alertmanager_as_mounted_passes_amtool_and_reaches_its_responder(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    alertmanager = services(compose)["alertmanager"]
    workdir = alertmanager["working_dir"]
    root = container_tree(alertmanager, workdir, tmp_path / "etc-alertmanager")
    config = root / flag(args_of(alertmanager), "config.file").removeprefix(workdir + "/")
    # Relative *_file paths resolve against the working directory, as in the container.
    run = subprocess.run(
        [require_binary("amtool"), "check-config", str(config)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr

    responder = services(compose)["responder"]
    assert responder["network_mode"] == "service:alertmanager"
    port = int(flag(args_of(responder), "port"))
    assert port in exposed(alertmanager)
    doc = yaml.safe_load(config.read_text())
    webhooks = [
        hook
        for receiver in doc["receivers"]
        for hook in receiver.get("webhook_configs", [])
        if hook["url"].endswith("/alertmanager/webhook")
    ]
    assert webhooks
    for hook in webhooks:
        url = urlsplit(hook["url"])
        assert (url.hostname, url.port) == ("127.0.0.1", port), hook["url"]
        token_file = hook["http_config"]["authorization"]["credentials_file"]
        secret = compose["secrets"][responder["secrets"][0]]["file"]
        assert (root / token_file).resolve() == (root / secret.removeprefix("./alertmanager/")), (
            "Alertmanager and the responder must read the same token file"
        )
    assert flag(args_of(responder), "token-file") == f"/run/secrets/{responder['secrets'][0]}"


@contextmanager
def container_environment(service: dict[str, Any], secrets: Path) -> Iterator[dict[str, str]]:
    """os.environ as the container has it (its ``environment`` only), with every
    /run/secrets/<name> path pointing into ``secrets``, where the test puts the secrets."""
    environment = service.get("environment") or {}
    env = {str(k): str(v).replace(SECRETS_DIR, f"{secrets}/") for k, v in environment.items()}
    with mock.patch.dict(os.environ, env, clear=True):
        yield env


def cli_command(args: list[str]) -> tuple[Any, dict[str, Any]]:
    """The tradeguard command ``args`` run, and its parameters parsed as the CLI would (options
    from the environment included), without running it."""
    group = get_command(app)
    assert isinstance(group, TyperGroup)
    name, *rest = args
    with group.make_context("tradeguard", [], resilient_parsing=True) as root:
        command = group.get_command(root, name)
        assert command is not None, f"tradeguard has no command {name}"
        with command.make_context(name, rest, parent=root) as ctx:
            return command, dict(ctx.params)


def parse_cli(args: list[str]) -> dict[str, Any]:
    """Parse a tradeguard command line as the CLI would, without running it."""
    return cli_command(args)[1]


def databases_created() -> set[str]:
    text = (DEPLOY / "compose" / "postgres-init.sql").read_text()
    return set(re.findall(r"CREATE DATABASE (\w+);", text))


def check_database_url(compose: dict[str, Any], url: str, client: dict[str, Any]) -> None:
    """``url`` names the right server, user and database; its password reaches libpq through
    the ``client`` service's environment (PGPASSWORD), not the URL."""
    parts = urlsplit(url)
    postgres = services(compose)["postgres"]["environment"]
    assert parts.hostname == "postgres" and parts.port == 5432, url
    assert parts.username == postgres["POSTGRES_USER"]
    assert parts.password is None, f"{url}: a password in a URL"
    assert client["environment"]["PGPASSWORD"] == postgres["POSTGRES_PASSWORD"]
    assert parts.path.lstrip("/") in databases_created(), f"{url}: database not created"


def write_secrets(into: Path, service: dict[str, Any], value: str) -> Path:
    """Each secret ``service`` mounts, as a file in ``into`` holding ``value``."""
    into.mkdir(parents=True, exist_ok=True)
    for secret in service.get("secrets", []):
        (into / secret).write_text(value + "\n")
    return into


@pytest.mark.parametrize("replica", ["engine-a", "engine-b"])
def test_engine_replicas_start_with_valid_settings_and_commands(
    compose: dict[str, Any], replica: str, tmp_path: Path
) -> None:
    service = services(compose)[replica]
    secrets = write_secrets(tmp_path / "secrets", service, "canary-redis-password")
    with container_environment(service, secrets) as env:
        command, params = cli_command(args_of(service))
        settings = load_settings()  # as the container builds them: environment and files
    assert params["replica_id"] == replica
    check_database_url(compose, params["ledger_url"], service)
    # Every TRADEGUARD_* variable is a real setting or one of the command's options.
    options = {getattr(p, "envvar", None) for p in command.params}
    fields = {f"TRADEGUARD_{name.upper()}" for name in Settings.model_fields}
    for name in env:
        if name.startswith("TRADEGUARD_"):
            assert name in fields | options, f"{replica}: {name} is no setting nor option"
    assert settings.metrics_host == "0.0.0.0" and settings.metrics_port in exposed(service)
    for layer in Layer:
        url = urlsplit(settings.layer_url(layer))
        assert url.hostname == f"redis-{layer.value.replace('_', '-')}", layer
        assert url.password == "canary-redis-password", f"{layer}: no Redis password"
    mounted = {target for _source, target in (str(v).split(":")[:2] for v in service["volumes"])}
    assert Path(params["broker_book"]).parent.as_posix() in mounted, "the order book must be shared"
    assert settings.duckdb_path.parent.as_posix() in mounted


def test_the_responder_starts_with_valid_settings(compose: dict[str, Any]) -> None:
    params = parse_cli(args_of(services(compose)["responder"]))
    environment = services(compose)["responder"].get("environment", {})
    prefix = "TRADEGUARD_RESPONDER_"
    from_env = {
        k.removeprefix(prefix).lower(): interpolate(str(v))
        for k, v in environment.items()
        if k.startswith(prefix)
    }
    settings = ResponderSettings(**from_env, **{k: v for k, v in params.items() if v is not None})
    assert settings.host == "0.0.0.0"
    # The console's runbook links open where people reach it, its pages find the runbooks and
    # the roster that the compose file mounts.
    assert settings.runbook_base_url == "http://127.0.0.1:9466"
    mounts = {target: source for source, target in bind_mounts(services(compose)["responder"])}
    assert settings.runbooks_dir is not None and settings.roster_file is not None
    assert (mounts[str(settings.runbooks_dir)] / "RedisDown.md").is_file()
    assert mounts[str(settings.roster_file)].is_file()
    check_database_url(compose, settings.history_url, services(compose)["responder"])


# Flags by which a program takes a password on its command line.
PASSWORD_FLAGS = re.compile(
    r"(^|[\s\[])(-a|--pass|--password|--requirepass|-?-redis\.password|--askpass)(?=[\s=\]]|$)"
)
# A shell reading a secret itself (a program given a secret's path, --token-file=..., is fine).
SHELL_READS_SECRET = re.compile(rf"(\$\(\s*cat\s+|<\s*){SECRETS_DIR}")


def exercised(service: str, part: str) -> bool:
    """Whether the tests below run this part of this service's argv for real."""
    redis = {f"redis-{layer.replace('_', '-')}" for layer in LAYERS}
    exporters = {f"redis-exporter-{layer.replace('_', '-')}" for layer in LAYERS}
    return (service in redis and part in ("entrypoint", "healthcheck")) or (
        service in exporters and part == "entrypoint"
    )


def test_no_secret_is_on_a_command_line(compose: dict[str, Any]) -> None:
    """A container's argv shows in ``ps`` on the host for every user: secrets go in files
    (compose secrets) or the environment. Every script that reads a secret is one the tests
    below run, to show that what it starts never gets the secret as an argument."""
    secret = ENV["TRADEGUARD_PG_PASSWORD"]
    leaks = []
    for name, service in services(compose).items():
        for part, texts in argv_texts(service).items():
            for text in texts:
                if secret in text or re.search(r"://[^/@\s]*:[^/@\s]+@", text):
                    leaks.append(f"{name} {part}: {text}")
                if PASSWORD_FLAGS.search(text):
                    leaks.append(f"{name} {part}: a password flag in {text!r}")
                if SHELL_READS_SECRET.search(text) and not exercised(name, part):
                    leaks.append(f"{name} {part}: a script reads a secret and no test runs it")
    assert leaks == []


# ---- every Redis requires the password, which no argv carries ---------------------------------
def redis_services(compose: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (
            layer,
            services(compose)[f"redis-{layer.replace('_', '-')}"],
            services(compose)[f"redis-exporter-{layer.replace('_', '-')}"],
        )
        for layer in LAYERS
    ]


class Shims:
    """A directory that is the whole PATH of the scripts under test: each program they may run
    is a shim recording its argv (one NUL-separated line per call) before it execs the real
    one, so an argument carrying the secret is caught, and a program without a shim fails."""

    def __init__(self, root: Path, real: dict[str, str]) -> None:
        self.dir = root / "bin"
        self.log = root / "argv.log"
        self.dir.mkdir(parents=True)
        self.log.touch()
        for name, target in real.items():
            shim = self.dir / name
            shim.write_text(
                "#!/bin/sh\n"
                f"printf '%s\\0' \"$0\" \"$@\" >> '{self.log}'\n"
                f"printf '\\n' >> '{self.log}'\n"
                f'exec {target} "$@"\n'
            )
            shim.chmod(0o755)

    def argvs(self) -> list[list[str]]:
        return [line.split("\0")[:-1] for line in self.log.read_text().splitlines() if line]

    def carrying(self, secret: str) -> list[list[str]]:
        """Every recorded argv with ``secret`` in it (it must be none)."""
        return [argv for argv in self.argvs() if any(secret in word for word in argv)]


@pytest.fixture
def shims(tmp_path: Path) -> Shims:
    entrypoint = tmp_path / "docker-entrypoint.sh"  # the image's drops to the redis user; exec
    entrypoint.write_text('#!/bin/sh\nexec "$@"\n')
    entrypoint.chmod(0o755)
    real = {name: require_binary(name) for name in ("cat", "grep", "redis-cli", "redis-server")}
    real["docker-entrypoint.sh"] = str(entrypoint)
    real["redis_exporter"] = require_binary("prometheus-redis-exporter")
    return Shims(tmp_path / "shims", real)


def as_run_here(text: str, secrets: Path) -> str:
    """A script from the compose file with its secrets in ``secrets`` and the exporter's binary
    (``/redis_exporter`` in its image) found on PATH."""
    return text.replace(SECRETS_DIR, f"{secrets}/").replace("/redis_exporter", "redis_exporter")


def container(
    service: dict[str, Any], secrets: Path, shims: Shims, extra: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment the service's container starts with, run here: the flags in
    ``extra`` (a loopback port, ...) added after the compose file's own."""
    shell, *rest = (as_run_here(a, secrets) for a in service["entrypoint"])
    assert shell == "sh", "a shell reads the secret: the entrypoint is sh -c SCRIPT"
    argv = [require_binary("sh"), *rest, *args_of(service), *extra]
    return argv, {"PATH": str(shims.dir)}


def redis_answers(port: int, password: str | None) -> str:
    run = subprocess.run(
        [require_binary("redis-cli"), "-h", LOOPBACK, "-p", str(port), "ping"],
        capture_output=True,
        text=True,
        timeout=10,
        env={**os.environ, **({"REDISCLI_AUTH": password} if password else {})},
        check=False,
    )
    return run.stdout.strip()


def healthy(service: dict[str, Any], secrets: Path, shims: Shims, port: int) -> bool:
    """The service's health check (CMD-SHELL: ``/bin/sh -c``), aimed at ``port``."""
    kind, test = service["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    script = as_run_here(test, secrets).replace("redis-cli", f"redis-cli -p {port}", 1)
    run = subprocess.run(
        [require_binary("sh"), "-c", script], env={"PATH": str(shims.dir)}, timeout=10, check=False
    )
    return run.returncode == 0


@pytest.mark.parametrize("layer", LAYERS)
def test_each_redis_requires_the_secret_password_and_no_argv_carries_it(
    compose: dict[str, Any], layer: str, shims: Shims, tmp_path: Path
) -> None:
    redis, exporter = next((r, e) for name, r, e in redis_services(compose) if name == layer)
    assert "redis-password" in redis["secrets"] and "redis-password" in exporter["secrets"]
    password = "canary-9f1c-redis"
    secrets = write_secrets(tmp_path / "secrets", redis, password)
    port, metrics_port = free_port(), free_port()

    argv, env = container(redis, secrets, shims, ["--port", str(port), "--bind", LOOPBACK])
    server = ManagedProcess(
        f"redis-{layer}",
        argv,
        tmp_path / "redis",
        env=env,
        health=lambda: redis_answers(port, password) == "PONG",
    )
    server.start()
    try:
        assert shims.carrying(password) == [], "an argument carries the password"
        assert redis_answers(port, None).startswith("NOAUTH"), f"{layer}: Redis without password"
        assert redis_answers(port, "wrong") != "PONG"
        assert healthy(redis, secrets, shims, port)
        (secrets / "redis-password").write_text("other-password\n")
        assert not healthy(redis, secrets, shims, port), "the health check must authenticate"
        (secrets / "redis-password").write_text(password + "\n")
        # redis-server is the container's process 1 (exec), so `docker stop` reaches it.
        assert server.pid is not None
        assert Path(f"/proc/{server.pid}/comm").read_text().strip() == "redis-server"

        argv, env = container(
            exporter,
            secrets,
            shims,
            [f"-web.listen-address={LOOPBACK}:{metrics_port}"],
        )
        argv = [
            a.replace(f"redis-{layer.replace('_', '-')}:6379", f"{LOOPBACK}:{port}") for a in argv
        ]
        metrics_url = f"http://{LOOPBACK}:{metrics_port}/metrics"
        scraper = ManagedProcess(
            f"exporter-{layer}",
            argv,
            tmp_path / "exporter",
            env=env,
            health=lambda: http_ok(metrics_url),
        )
        scraper.start()
        try:
            import httpx

            assert shims.carrying(password) == [], "an argument carries the password"
            wait_until(
                lambda: re.search(r"^redis_up 1$", httpx.get(metrics_url).text, re.M) is not None,
                10,
                "the exporter to log in to Redis",
            )
        finally:
            scraper.stop()
    finally:
        server.stop()
    # Every program the scripts ran (the health check's included) went through a shim.
    assert {Path(a[0]).name for a in shims.argvs()} >= {
        "cat",
        "docker-entrypoint.sh",
        "redis-server",
        "redis-cli",
        "grep",
        "redis_exporter",
    }
    assert shims.carrying(password) == []


@pytest.mark.parametrize("content", ["", "\n", 'with"quote'])
def test_a_redis_without_a_usable_secret_does_not_start(
    compose: dict[str, Any], content: str, shims: Shims, tmp_path: Path
) -> None:
    """An empty secret would be ``requirepass ""``: a Redis open to all. It stops instead."""
    redis = services(compose)["redis-trade-state"]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "redis-password").write_text(content)
    argv, env = container(redis, secrets, shims, ["--port", str(free_port())])
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10, check=False)
    assert run.returncode != 0
    assert "redis-password secret" in run.stderr
    assert not [a for a in shims.argvs() if Path(a[0]).name == "redis-server"]


def test_grafana_mounts_what_its_provisioning_expects(compose: dict[str, Any]) -> None:
    grafana = services(compose)["grafana"]
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "tradeguard.yaml").read_text()
    )["providers"][0]
    targets = {target: source for source, target in bind_mounts(grafana)}
    assert targets[provider["options"]["path"]] == DEPLOY / "grafana" / "dashboards"
    assert targets["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"
    url = urlsplit(grafana["environment"]["TRADEGUARD_PROMETHEUS_URL"])
    assert url.hostname == "prometheus" and url.port in exposed(services(compose)["prometheus"])


def test_the_docker_exporter_reads_the_mounted_engine_socket(compose: dict[str, Any]) -> None:
    service = services(compose)["docker-exporter"]
    params = parse_cli(args_of(service))
    assert params["host"] == "0.0.0.0" and params["port"] in exposed(service)
    mounted = {target for _source, target in (str(v).split(":")[:2] for v in service["volumes"])}
    assert params["docker_socket"] in mounted
