"""What the docker exporter reads from one ``docker inspect`` document (Engine API format)."""

from __future__ import annotations

from typing import Any

from tradeguard.metrics.docker import container_facts


def inspect(**overrides: Any) -> dict[str, Any]:
    """A running, healthy container with its one named volume mounted."""
    doc: dict[str, Any] = {
        "Id": "4fa6e0f0c6786287e131c3852c58a2e01cc697a68231826813597e4994f1d6e2",
        "Name": "/tradeguard-engine-a-1",
        "State": {
            "Status": "running",
            "Running": True,
            "ExitCode": 0,
            "Health": {"Status": "healthy", "FailingStreak": 0, "Log": []},
        },
        "HostConfig": {"Binds": ["tradeguard_engine-a:/var/lib/tradeguard:rw"], "Mounts": None},
        "Config": {"Labels": {"com.docker.compose.service": "engine-a"}, "Volumes": None},
        "Mounts": [
            {
                "Type": "volume",
                "Name": "tradeguard_engine-a",
                "Destination": "/var/lib/tradeguard",
                "RW": True,
            }
        ],
    }
    doc.update(overrides)
    return doc


def test_a_running_healthy_container() -> None:
    facts = container_facts(inspect())
    assert (facts.name, facts.health, facts.exit_code, facts.missing_mounts) == (
        "tradeguard-engine-a-1",
        "healthy",
        0,
        0,
    )


def test_an_exited_container_reports_its_exit_code_and_no_missing_mounts() -> None:
    state = {"Status": "exited", "Running": False, "ExitCode": 2}
    facts = container_facts(inspect(State=state, Mounts=[]))
    assert (facts.health, facts.exit_code, facts.missing_mounts) == ("none", 2, 0)


def test_unhealthy_and_starting_are_read_as_docker_reports_them() -> None:
    for status in ("unhealthy", "starting"):
        state = {"Running": True, "Health": {"Status": status}}
        assert container_facts(inspect(State=state)).health == status


def test_a_state_docker_might_add_later_counts_as_none() -> None:
    state = {"Running": True, "Health": {"Status": "degraded"}}
    assert container_facts(inspect(State=state)).health == "none"


def test_declared_mount_points_with_nothing_mounted_are_counted() -> None:
    host = {
        "Binds": ["/srv/tradeguard/book:/var/lib/tradeguard/book:ro", "bad-bind-without-target"],
        "Mounts": [{"Type": "volume", "Source": "duck", "Target": "/data"}],
    }
    config = {"Volumes": {"/var/lib/tradeguard": {}}}
    mounted = [{"Destination": "/var/lib/tradeguard"}]
    facts = container_facts(inspect(HostConfig=host, Config=config, Mounts=mounted))
    assert facts.missing_mounts == 2  # the book and /data; the image VOLUME is mounted


def test_a_container_without_a_name_is_named_by_its_short_id() -> None:
    facts = container_facts(inspect(Name=""))
    assert facts.name == "4fa6e0f0c678"
