"""deploy/docker-compose.yml: the production layout stays consistent with the rest of deploy/.

No Docker engine is needed (nor assumed: CI has none). Each check rebuilds what a container would
see from the compose file itself (its mounts, its command, its environment) and hands it to the
real tool that reads it: promtool and amtool on the mounted configuration, the Debian builds of
the exporters, Prometheus and Alertmanager for the flags given to their images, tradeguard's own
CLI parser and settings for the tradeguard services. A renamed flag, a target that names no
service, a mount of a file that moved, or a webhook nobody listens on fails here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from typer.core import TyperGroup
from typer.main import get_command

from tradeguard.bus.keys import Keys
from tradeguard.cli import app
from tradeguard.config import Settings
from tradeguard.metrics.vocabulary import LAYERS
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

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::(?P<op>[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` against :data:`ENV`."""

    def value(match: re.Match[str]) -> str:
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


def flag(args: list[str], name: str) -> str:
    """The value of ``--name=value`` (or ``-name=value``) in ``args``."""
    for arg in args:
        key, _, value = arg.partition("=")
        if key.lstrip("-") == name:
            return value
    raise AssertionError(f"no {name} in {args}")


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(source in deploy/, container path) of each relative bind mount."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("./"):
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
            if not source.startswith(("./", "/")):
                assert source in declared_volumes, f"{name}: volume {source} is not declared"
        for dependency in service.get("depends_on", []):
            assert dependency in services(compose), f"{name} depends on unknown {dependency}"
        mode = service.get("network_mode", "")
        if mode.startswith("service:"):
            assert mode.removeprefix("service:") in services(compose), name
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: secret {secret} is not declared"
    for name, secret in compose["secrets"].items():
        assert (DEPLOY / secret["file"]).is_file(), f"secret {name}: {secret['file']} is missing"


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


def parse_cli(args: list[str]) -> dict[str, Any]:
    """Parse a tradeguard command line as the CLI would, without running it."""
    group = get_command(app)
    assert isinstance(group, TyperGroup)
    name, *rest = args
    with group.make_context("tradeguard", [], resilient_parsing=True) as root:
        command = group.get_command(root, name)
        assert command is not None, f"tradeguard has no command {name}"
        with command.make_context(name, rest, parent=root) as ctx:
            return dict(ctx.params)


def databases_created() -> set[str]:
    text = (DEPLOY / "compose" / "postgres-init.sql").read_text()
    return set(re.findall(r"CREATE DATABASE (\w+);", text))


def check_database_url(compose: dict[str, Any], url: str, client: dict[str, Any]) -> None:
    """``url`` names the right server, user and database; its password reaches libpq through
    the ``client`` service's environment (PGPASSWORD), not the URL on its command line."""
    parts = urlsplit(url)
    postgres = services(compose)["postgres"]["environment"]
    assert parts.hostname == "postgres" and parts.port == 5432, url
    assert parts.username == postgres["POSTGRES_USER"]
    assert parts.password is None, f"{url}: a password on a command line"
    assert client["environment"]["PGPASSWORD"] == postgres["POSTGRES_PASSWORD"]
    assert parts.path.lstrip("/") in databases_created(), f"{url}: database not created"


@pytest.mark.parametrize("replica", ["engine-a", "engine-b"])
def test_engine_replicas_start_with_valid_settings_and_commands(
    compose: dict[str, Any], replica: str
) -> None:
    service = services(compose)[replica]
    params = parse_cli(args_of(service))
    assert params["replica_id"] == replica
    check_database_url(compose, params["ledger_url"], service)
    env = {
        k.removeprefix("TRADEGUARD_").lower(): v
        for k, v in service["environment"].items()
        if k.startswith("TRADEGUARD_")
    }
    settings = Settings(**env)  # every key a real setting, every value valid
    assert settings.metrics_host == "0.0.0.0" and settings.metrics_port in exposed(service)
    for layer in LAYERS:
        host = urlsplit(getattr(settings, f"{layer}_redis_url")).hostname
        assert host == f"redis-{layer.replace('_', '-')}", layer
    mounted = {target for _source, target in (str(v).split(":")[:2] for v in service["volumes"])}
    assert Path(params["broker_book"]).parent.as_posix() in mounted, "the order book must be shared"
    assert settings.duckdb_path.parent.as_posix() in mounted


def test_the_responder_starts_with_valid_settings(compose: dict[str, Any]) -> None:
    params = parse_cli(args_of(services(compose)["responder"]))
    settings = ResponderSettings(**{k: v for k, v in params.items() if v is not None})
    assert settings.host == "0.0.0.0"
    check_database_url(compose, settings.history_url, services(compose)["responder"])


def test_no_secret_is_on_a_command_line(compose: dict[str, Any]) -> None:
    """A container's argv shows in ``ps`` on the host for every user: secrets go in files
    (compose secrets) or the environment."""
    secret = ENV["TRADEGUARD_PG_PASSWORD"]
    leaks = [
        f"{name}: {arg}"
        for name, service in services(compose).items()
        for key in ("command", "entrypoint")
        for arg in (service.get(key) or [])
        if secret in str(arg) or re.search(r"://[^/@\s]*:[^/@\s]+@", str(arg))
    ]
    assert leaks == []


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
