"""`tradeguard docker-exporter` as a real process, reading the Docker Engine API over a socket.

No Docker engine runs on the test machine (nor can one pull images here), so the engine's side
is a stand-in: an HTTP server on a unix socket that answers the two Engine API calls the exporter
makes, ``GET /containers/json?all=1`` and ``GET /containers/{id}/json``, with documents in the
API's own format. Everything on the exporter's side is real: the process, its socket client, its
/metrics endpoint, scraped and parsed as Prometheus would.
"""

from __future__ import annotations

import json
import socketserver
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tradeguard.process import ManagedProcess, free_port, wait_until


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class DockerApiSocket:
    """Answers the exporter's Engine API calls from ``containers`` (id -> inspect document)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.containers: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self._server: _UnixHTTPServer | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                api.requests.append(url.path)
                parts = url.path.strip("/").split("/")
                if url.path == "/containers/json" and "all=1" in url.query:
                    body: Any = [api.summary(doc) for doc in api.containers.values()]
                elif len(parts) == 3 and parts[0] == "containers" and parts[2] == "json":
                    found = api.containers.get(parts[1])
                    if found is None:
                        self._send(404, {"message": f"No such container: {parts[1]}"})
                        return
                    body = found
                else:
                    self._send(404, {"message": "page not found"})
                    return
                self._send(200, body)

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    @staticmethod
    def summary(doc: dict[str, Any]) -> dict[str, Any]:
        """The ``docker ps -a`` entry of an inspect document."""
        return {
            "Id": doc["Id"],
            "Names": [doc["Name"]],
            "State": doc["State"]["Status"],
            "Labels": doc["Config"]["Labels"],
        }

    def start(self) -> DockerApiSocket:
        self.path.unlink(missing_ok=True)
        self._server = _UnixHTTPServer(str(self.path), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.path.unlink(missing_ok=True)


def container(
    cid: str,
    name: str,
    running: bool = True,
    health: str | None = None,
    exit_code: int = 0,
    oneoff: bool = False,
    declared: tuple[str, ...] = (),
    mounted: tuple[str, ...] = (),
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Status": "running" if running else "exited",
        "Running": running,
        "ExitCode": exit_code,
    }
    if health:
        state["Health"] = {"Status": health, "FailingStreak": 0, "Log": []}
    labels = {"com.docker.compose.project": "tradeguard", "com.docker.compose.service": name}
    if oneoff:
        labels["com.docker.compose.oneoff"] = "True"
    return {
        "Id": cid,
        "Name": f"/{name}",
        "State": state,
        "Config": {"Labels": labels, "Volumes": None},
        "HostConfig": {"Binds": [f"vol{i}:{p}" for i, p in enumerate(declared)], "Mounts": None},
        "Mounts": [{"Type": "volume", "Destination": p} for p in mounted],
    }


@pytest.fixture
def docker_api(tmp_path: Path) -> Iterator[DockerApiSocket]:
    api = DockerApiSocket(tmp_path / "docker.sock").start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def exporter(tmp_path: Path, docker_api: DockerApiSocket) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"

    def answers() -> bool:
        try:
            return httpx.get(url, timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    argv = [sys.executable, "-m", "tradeguard.cli", "docker-exporter"]
    argv += ["--docker-socket", str(docker_api.path), "--port", str(port)]
    proc = ManagedProcess("docker-exporter", argv, tmp_path / "exporter", health=answers)
    proc.start()
    try:
        yield url
    finally:
        proc.stop()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(series name, sorted labels) -> value of every tradeguard_ series on ``url``."""
    text = httpx.get(url, timeout=5).text
    series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("tradeguard_"):
                series[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return series


def value(series: dict[Any, float], name: str, **labels: str) -> float | None:
    return series.get((name, tuple(sorted(labels.items()))))


def test_each_container_is_reported_as_docker_inspect_sees_it(
    docker_api: DockerApiSocket, exporter: str
) -> None:
    docker_api.containers.update(
        {
            "a1": container("a1", "engine-a", health="healthy", declared=("/d",), mounted=("/d",)),
            "b2": container("b2", "redis", health="unhealthy", declared=("/data",)),
            "c3": container("c3", "migrate", running=False, exit_code=3),
            "d4": container("d4", "adhoc", running=False, exit_code=1, oneoff=True),
        }
    )
    series = scrape(exporter)
    assert value(series, "tradeguard_docker_engine_up") == 1
    assert value(series, "tradeguard_container_health", container="engine-a", state="healthy") == 1
    assert value(series, "tradeguard_container_health", container="redis", state="unhealthy") == 1
    assert value(series, "tradeguard_container_health", container="redis", state="healthy") == 0
    assert value(series, "tradeguard_container_health", container="migrate", state="none") == 1
    assert value(series, "tradeguard_container_exit_code", container="migrate") == 3
    assert value(series, "tradeguard_container_exit_code", container="engine-a") == 0
    assert value(series, "tradeguard_container_volume_mounts_missing", container="redis") == 1
    assert value(series, "tradeguard_container_volume_mounts_missing", container="engine-a") == 0
    # A `docker compose run` one-off is not a service's container: never reported.
    assert not any(dict(labels).get("container") == "adhoc" for _name, labels in series)
    assert "/containers/d4/json" not in docker_api.requests


def test_a_removed_container_drops_out_at_the_next_scrape(
    docker_api: DockerApiSocket, exporter: str
) -> None:
    docker_api.containers["a1"] = container("a1", "engine-a", running=False, exit_code=137)
    assert value(scrape(exporter), "tradeguard_container_exit_code", container="engine-a") == 137
    del docker_api.containers["a1"]
    series = scrape(exporter)
    assert value(series, "tradeguard_container_exit_code", container="engine-a") is None
    assert value(series, "tradeguard_docker_engine_up") == 1


def test_an_unreachable_engine_is_reported_and_the_exporter_keeps_serving(
    docker_api: DockerApiSocket, exporter: str
) -> None:
    docker_api.containers["a1"] = container("a1", "engine-a", health="healthy")
    assert value(scrape(exporter), "tradeguard_docker_engine_up") == 1

    docker_api.stop()  # the daemon goes away: its socket with it
    series = scrape(exporter)
    assert value(series, "tradeguard_docker_engine_up") == 0
    assert (value(series, "tradeguard_docker_collect_errors_total") or 0) >= 1
    assert not any(name.startswith("tradeguard_container_") for name, _labels in series)

    docker_api.start()  # back: the next scrape reads it again, no restart of the exporter
    wait_until(
        lambda: value(scrape(exporter), "tradeguard_docker_engine_up") == 1,
        5,
        "the exporter to read the engine again",
    )
    series = scrape(exporter)
    assert value(series, "tradeguard_container_health", container="engine-a", state="healthy") == 1
