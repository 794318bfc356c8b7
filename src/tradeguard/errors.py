"""Named exception classes shared by every part, so callers can catch what they mean."""


class TradeguardError(Exception):
    """Base of every error tradeguard raises on purpose."""


class ConfigError(TradeguardError):
    """A setting has a value tradeguard cannot use; the message names the setting."""


class ServiceError(TradeguardError):
    """A child process (redis-server, Prometheus, ...) failed to start or answer."""
