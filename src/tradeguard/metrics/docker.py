"""Container facts cAdvisor does not export: health-check status, exit code, missing mounts.

cAdvisor reports what running containers use; three Docker alerts (HealthCheckFailure,
ConfigurationError, VolumeMountIssue) need what only the Docker Engine API knows, the figures
``docker inspect`` prints. This collector asks the engine at scrape time, one list call and one
inspect per container over the engine's unix socket, so the figures are never older than the
scrape and a removed container drops out at once. It only reads (GET): the socket is still a
root-equivalent credential, so the exporter is the one process that gets it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tradeguard.metrics.family import FamilyCollector

DEFAULT_SOCKET = "/var/run/docker.sock"
# Docker's health-check states, plus "none" for a container without a health check.
HEALTH_STATES = ("healthy", "unhealthy", "starting", "none")
ONEOFF_LABEL = "com.docker.compose.oneoff"  # `docker compose run`: not a service's container


class DockerUnavailable(Exception):
    """The Docker Engine API could not be read (socket missing, engine down, bad reply)."""


class DockerEngine:
    """The two Docker Engine API calls the collector needs, over the engine's unix socket."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET, timeout: float = 2.0) -> None:
        self.socket_path = socket_path
        self._client = httpx.Client(
            transport=httpx.HTTPTransport(uds=socket_path),
            base_url="http://docker",  # the host part is ignored on a unix socket
            timeout=timeout,
        )

    def _get(self, path: str, **params: str) -> Any:
        try:
            reply = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise DockerUnavailable(f"Docker engine at {self.socket_path}: {exc}") from exc
        if reply.status_code == 404:
            return None
        if reply.status_code != 200:
            raise DockerUnavailable(
                f"Docker engine at {self.socket_path}: GET {path} answered {reply.status_code}"
            )
        try:
            return reply.json()
        except ValueError as exc:
            raise DockerUnavailable(f"Docker engine at {self.socket_path}: {exc}") from exc

    def containers(self) -> list[dict[str, Any]]:
        """Every container, running or not (``docker ps -a``)."""
        listed = self._get("/containers/json", all="1")
        if not isinstance(listed, list):
            raise DockerUnavailable(f"Docker engine at {self.socket_path}: bad container list")
        return listed

    def inspect(self, container_id: str) -> dict[str, Any] | None:
        """``docker inspect``; None when the container was removed meanwhile."""
        found = self._get(f"/containers/{container_id}/json")
        return found if isinstance(found, dict) else None

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class ContainerFacts:
    name: str
    health: str  # one of HEALTH_STATES
    exit_code: int  # 0 while the container runs (Docker zeroes it on start)
    missing_mounts: int  # declared mount points with nothing mounted (0 unless running)


def container_facts(inspect: dict[str, Any]) -> ContainerFacts:
    """The figures of one ``docker inspect`` document."""
    state = inspect.get("State") or {}
    running = bool(state.get("Running"))
    health = str((state.get("Health") or {}).get("Status") or "none")
    present = {str(m.get("Destination")) for m in inspect.get("Mounts") or []}
    missing = len(declared_mount_points(inspect) - present) if running else 0
    return ContainerFacts(
        name=str(inspect.get("Name", "")).lstrip("/") or str(inspect.get("Id", ""))[:12],
        health=health if health in HEALTH_STATES else "none",
        exit_code=0 if running else int(state.get("ExitCode") or 0),
        missing_mounts=missing,
    )


def declared_mount_points(inspect: dict[str, Any]) -> set[str]:
    """Where the container's configuration asks for storage: ``-v``/``--mount`` and image
    ``VOLUME`` paths (``HostConfig.Binds``, ``HostConfig.Mounts``, ``Config.Volumes``)."""
    host = inspect.get("HostConfig") or {}
    points = set()
    for bind in host.get("Binds") or []:
        parts = str(bind).split(":")
        if len(parts) >= 2:
            points.add(parts[1])
    points.update(str(m["Target"]) for m in host.get("Mounts") or [] if m.get("Target"))
    points.update(str(path) for path in (inspect.get("Config") or {}).get("Volumes") or {})
    return points


class DockerCollector(FamilyCollector):
    """``tradeguard_container_*`` gauges for every container of the engine but one-off runs."""

    def __init__(self, engine: DockerEngine) -> None:
        self.engine = engine
        self.errors = 0

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "tradeguard_container_health",
                "Enum: 1 for a container's Docker health-check status (healthy, unhealthy, "
                "starting, none), 0 for the others.",
                labels=["container", "state"],
            ),
            GaugeMetricFamily(
                "tradeguard_container_exit_code",
                "Exit code Docker reports for a container (0 while it runs).",
                labels=["container"],
            ),
            GaugeMetricFamily(
                "tradeguard_container_volume_mounts_missing",
                "Mount points a running container's configuration declares with nothing "
                "mounted on them.",
                labels=["container"],
            ),
            GaugeMetricFamily(
                "tradeguard_docker_engine_up",
                "1 when this scrape could read the Docker Engine API, else 0.",
            ),
        )

    def read(self) -> list[ContainerFacts]:
        """Facts of every container; DockerUnavailable when the engine cannot be read."""
        facts = []
        for listed in self.engine.containers():
            if (listed.get("Labels") or {}).get(ONEOFF_LABEL) == "True":
                continue
            inspected = self.engine.inspect(str(listed.get("Id")))
            if inspected is not None:
                facts.append(container_facts(inspected))
        return facts

    def collect(self) -> Iterator[Metric]:
        health, exit_code, missing, up = self._families()
        errors = CounterMetricFamily(
            "tradeguard_docker_collect_errors",
            "Scrapes that could not read the Docker Engine API.",
        )
        try:
            facts = self.read()
        except DockerUnavailable:
            self.errors += 1
            facts = None
        up.add_metric([], 0.0 if facts is None else 1.0)
        for fact in facts or []:
            for state in HEALTH_STATES:
                health.add_metric([fact.name, state], 1.0 if state == fact.health else 0.0)
            exit_code.add_metric([fact.name], float(fact.exit_code))
            missing.add_metric([fact.name], float(fact.missing_mounts))
        errors.add_metric([], float(self.errors))
        yield from (health, exit_code, missing, up, errors)
