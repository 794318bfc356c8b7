"""Supervision of terminal/worker instances: health figures, state transitions, bounded restarts."""

from tradeguard.config import InstanceSpec
from tradeguard.instances.supervisor import InstanceSupervisor

__all__ = ["InstanceSpec", "InstanceSupervisor"]
