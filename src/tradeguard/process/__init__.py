"""Process control shared by the stack, the chaos scenarios and the test harness.

Start a binary on a free loopback port with its own directory, wait until it answers, then stop,
kill, pause (SIGSTOP) or resume it, and read its log when something goes wrong.
"""

from tradeguard.process.managed import ManagedProcess, wait_until
from tradeguard.process.ports import free_port

__all__ = ["ManagedProcess", "free_port", "wait_until"]
