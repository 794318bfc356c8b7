from pathlib import Path

import pytest

from tradeguard.config import Layer, load_settings
from tradeguard.errors import ConfigError


def test_defaults_share_one_redis_url() -> None:
    s = load_settings(redis_url="redis://127.0.0.1:7000/0")
    assert {s.layer_url(layer) for layer in Layer} == {"redis://127.0.0.1:7000/0"}


def test_a_layer_can_have_its_own_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGUARD_SIGNAL_STREAM_REDIS_URL", "redis://127.0.0.1:6381/0")
    s = load_settings()
    assert s.layer_url(Layer.SIGNAL_STREAM) == "redis://127.0.0.1:6381/0"
    assert s.layer_url(Layer.TRADE_STATE) == s.redis_url


def test_toml_file_then_environment_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "tg.toml"
    cfg.write_text('signal_ttl_seconds = 12.5\nkey_prefix = "x:"\nresults_maxlen = 500\n')
    monkeypatch.setenv("TRADEGUARD_KEY_PREFIX", "env:")
    s = load_settings(cfg, results_maxlen=700)
    assert (s.signal_ttl_seconds, s.key_prefix, s.results_maxlen) == (12.5, "env:", 700)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"redis_url": "http://x"}, "redis_url"),
        ({"signal_ttl_seconds": -1}, "signal_ttl_seconds"),
        ({"metrics_port": 70000}, "metrics_port"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_bad_values_give_one_readable_error(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings(**overrides)


def test_bad_env_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGUARD_RECLAIM_IDLE_SECONDS", "soon")
    with pytest.raises(ConfigError, match="reclaim_idle_seconds"):
        load_settings()


def test_missing_and_broken_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("= nonsense")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_instances_come_from_the_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "tradeguard.toml"
    path.write_text(
        '[[instances]]\nid = "mt5-1"\ncommand = ["mt5-bridge", "--account", "1"]\n'
        "memory_budget_bytes = 2147483648\n"
        '[[instances]]\nid = "mt5-2"\ncommand = ["mt5-bridge", "--account", "2"]\n'
    )
    settings = load_settings(path)
    assert [(i.id, i.command[-1]) for i in settings.instances] == [("mt5-1", "1"), ("mt5-2", "2")]
    assert settings.instances[0].memory_budget_bytes == 2 << 30
    assert settings.instances[1].memory_budget_bytes == 1 << 30


def test_a_bad_instance_is_a_clear_config_error(tmp_path: Path) -> None:
    path = tmp_path / "tradeguard.toml"
    path.write_text('[[instances]]\nid = "bad id!"\ncommand = []\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "instances.0.id" in message and "instances.0.command" in message
