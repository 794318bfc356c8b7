"""Settings that may hold a password come from a file too (``x`` or ``x_file``), one per source.

tradeguard.settings_files: the Redis URLs and ``redis_password`` (tradeguard.config), the
responder's history URL, the ledger URL of the CLI. Precedence treats a value and its file as
one setting; errors name the file and never show what is in it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from redis.connection import parse_url
from typer.core import TyperGroup
from typer.main import get_command
from typer.testing import CliRunner

from tradeguard.cli import DEFAULT_LEDGER_URL, LedgerFileOpt, LedgerOpt, _ledger_url, app
from tradeguard.config import Layer, Settings, load_settings, with_password
from tradeguard.errors import ConfigError
from tradeguard.responder.settings import load_responder_settings
from tradeguard.settings_files import Source, read_value_file, resolve_sources, without_pairs

SECRET = "hunter2-Zq9"


@pytest.fixture(autouse=True)
def _no_tradeguard_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the tests alone, whatever TRADEGUARD_* or PG* the shell has."""
    import os

    for name in list(os.environ):
        if name.startswith(("TRADEGUARD_", "PG")):
            monkeypatch.delenv(name)


def secret_file(tmp_path: Path, text: str, name: str = "secret") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- the helper --------------------------------------------------------------------------------
def test_a_value_file_is_read_stripped_of_its_final_newline(tmp_path: Path) -> None:
    path = secret_file(tmp_path, f"redis://:{SECRET}@h:1/0\n")
    assert read_value_file(path, "redis_url") == f"redis://:{SECRET}@h:1/0"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read redis_url from"),  # missing
        ("dir", "cannot read redis_url from"),  # a directory: unreadable as a file
        ("  \n", "is empty"),
        (f"redis://:{SECRET}@h/0\nsecond line\n", "more than one line"),
    ],
)
def test_a_bad_value_file_is_a_config_error_that_shows_no_content(
    tmp_path: Path, content: str | None, fragment: str
) -> None:
    path = tmp_path / "value"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=fragment) as info:
        read_value_file(path, "redis_url")
    assert str(path) in str(info.value)
    assert SECRET not in str(info.value)


def test_one_source_gives_a_value_or_its_file_never_both(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "redis://h/0\n")
    assert resolve_sources(["redis_url"], [Source({"redis_url_file": path})]) == {
        "redis_url": "redis://h/0",
        "redis_url_file": path,
    }
    both = Source({"redis_url": "redis://x/0", "redis_url_file": path}, str.upper)
    with pytest.raises(ConfigError, match="REDIS_URL and REDIS_URL_FILE are both given"):
        resolve_sources(["redis_url"], [both])


def test_the_highest_source_decides_a_value_and_its_file_together(tmp_path: Path) -> None:
    """A value given directly clears a file a lower source gives for the same setting, and
    that lower file is never read (here it does not exist)."""
    higher = Source({"redis_url": "redis://x/0"})
    lower = Source({"redis_url_file": tmp_path / "none", "redis_password": "x"})
    assert resolve_sources(["redis_url", "redis_password"], [higher, lower]) == {
        "redis_url": "redis://x/0",
        "redis_url_file": None,
        "redis_password": "x",
        "redis_password_file": None,
    }
    assert without_pairs({"redis_url_file": "/f", "key_prefix": "a:"}, ["redis_url"]) == {
        "key_prefix": "a:"
    }


# ---- tradeguard.config -------------------------------------------------------------------------
@pytest.mark.parametrize("name", Settings.file_backed)
def test_every_password_setting_reads_its_file_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    value = SECRET if name == "redis_password" else f"redis://:{SECRET}@{name}.example:6379/0"
    monkeypatch.setenv(f"TRADEGUARD_{name.upper()}_FILE", str(secret_file(tmp_path, value + "\n")))
    settings = load_settings()
    got = getattr(settings, name)
    assert (got.get_secret_value() if name == "redis_password" else got) == value
    assert getattr(settings, f"{name}_file") == tmp_path / "secret"


def test_an_environment_value_and_file_together_are_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEGUARD_REDIS_URL", "redis://a/0")
    monkeypatch.setenv("TRADEGUARD_REDIS_URL_FILE", str(secret_file(tmp_path, "redis://b/0")))
    with pytest.raises(ConfigError, match="TRADEGUARD_REDIS_URL and TRADEGUARD_REDIS_URL_FILE"):
        load_settings()


def test_a_missing_file_named_by_the_environment_says_which_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEGUARD_SIGNAL_STREAM_REDIS_URL_FILE", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="cannot read TRADEGUARD_SIGNAL_STREAM_REDIS_URL from"):
        load_settings()


def test_precedence_takes_a_value_and_its_file_as_one_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = secret_file(tmp_path, "redis://from-env-file/0", "env-url")
    toml = tmp_path / "tg.toml"
    # The TOML file's own file does not exist: it must not even be read, the environment wins.
    toml.write_text(
        f'redis_url = "redis://from-toml/0"\nredis_password_file = "{tmp_path / "none"}"\n'
        f'trade_state_redis_url_file = "{secret_file(tmp_path, "redis://toml-file/0", "ts")}"\n'
    )
    monkeypatch.setenv("TRADEGUARD_REDIS_URL_FILE", str(env_file))
    monkeypatch.setenv("TRADEGUARD_REDIS_PASSWORD", SECRET)
    settings = load_settings(toml)
    assert settings.redis_url == "redis://from-env-file/0"  # environment file over TOML value
    assert settings.trade_state_redis_url == "redis://toml-file/0"  # the TOML file's own file
    assert settings.redis_password is not None
    assert settings.redis_password.get_secret_value() == SECRET
    # An explicit override (--redis-url) wins over the environment's file.
    overridden = load_settings(toml, redis_url="redis://from-cli/0")
    assert (overridden.redis_url, overridden.redis_url_file) == ("redis://from-cli/0", None)
    # ... and a file given as a keyword over the environment's value.
    monkeypatch.delenv("TRADEGUARD_REDIS_URL_FILE")
    monkeypatch.setenv("TRADEGUARD_REDIS_URL", "redis://from-env/0")
    assert load_settings(redis_url_file=env_file).redis_url == "redis://from-env-file/0"


def test_a_toml_file_giving_a_value_and_its_file_is_a_config_error(tmp_path: Path) -> None:
    toml = tmp_path / "tg.toml"
    toml.write_text(f'redis_url = "redis://a/0"\nredis_url_file = "{tmp_path / "f"}"\n')
    with pytest.raises(ConfigError, match="redis_url and redis_url_file are both given"):
        load_settings(toml)


def test_a_bad_url_from_a_file_is_reported_without_its_password(tmp_path: Path) -> None:
    path = secret_file(tmp_path, f"http://:{SECRET}@h:1/0\n")
    with pytest.raises(ConfigError, match="redis_url") as info:
        load_settings(redis_url_file=path)
    assert SECRET not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings(redis_url=f"http://:{SECRET}@h:1/0")
    assert SECRET not in str(info.value)


def test_the_redis_password_serves_every_layer_without_one_of_its_own(tmp_path: Path) -> None:
    password = "p@ss/w:rd%"
    settings = load_settings(
        redis_url="redis://shared:6379/0",
        signal_stream_redis_url="redis://user@signals:6380/1",
        result_stream_redis_url="redis://:own@results:6381/0",
        instance_state_redis_url="unix:///run/redis.sock?db=2",
        redis_password_file=secret_file(tmp_path, password + "\n"),
    )
    expected = {
        Layer.TRADE_STATE: ("shared", None, password),
        Layer.SIGNAL_STREAM: ("signals", "user", password),
        Layer.RESULT_STREAM: ("results", None, "own"),  # a URL's own password wins
        Layer.INSTANCE_STATE: (None, None, password),
    }
    for layer, (host, user, pw) in expected.items():
        parsed = parse_url(settings.layer_url(layer))  # as redis-py reads it
        assert (parsed.get("host"), parsed.get("username"), parsed["password"]) == (host, user, pw)
    assert parse_url(settings.layer_url(Layer.INSTANCE_STATE))["path"] == "/run/redis.sock"
    assert password not in repr(settings)


def test_with_password_leaves_a_url_with_its_own_password_alone() -> None:
    assert with_password("redis://h/0?password=x", "y") == "redis://h/0?password=x"
    assert with_password("redis://h/0", None) == "redis://h/0"
    assert with_password("rediss://h:6380/0", "a b") == "rediss://:a%20b@h:6380/0"


# ---- the responder's history URL ---------------------------------------------------------------
def test_the_history_url_comes_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql://alerts:{SECRET}@db.example:5432/alerts"
    path = secret_file(tmp_path, url + "\n")
    monkeypatch.setenv("TRADEGUARD_RESPONDER_HISTORY_URL_FILE", str(path))
    assert load_responder_settings().history_url == url
    # --history-url (an override) wins over the environment's file; a file as an override too.
    assert load_responder_settings(history_url="sqlite:///x.db").history_url == "sqlite:///x.db"
    assert load_responder_settings(history_url_file=path).history_url == url
    monkeypatch.setenv("TRADEGUARD_RESPONDER_HISTORY_URL", "sqlite:///y.db")
    with pytest.raises(ConfigError, match="TRADEGUARD_RESPONDER_HISTORY_URL and"):
        load_responder_settings()


def test_a_bad_history_url_from_a_file_is_reported_without_its_password(tmp_path: Path) -> None:
    path = secret_file(tmp_path, f"mysql://u:{SECRET}@h/db\n")
    with pytest.raises(ConfigError, match="history_url") as info:
        load_responder_settings(history_url_file=path)
    assert SECRET not in str(info.value)


# ---- the ledger URL of the CLI -----------------------------------------------------------------
def ledger_probe() -> typer.Typer:
    """A command declared like `coordinator` and `ha status`, printing the URL they would use."""
    probe = typer.Typer()

    @probe.command()
    def show(
        ctx: typer.Context,
        ledger_url: LedgerOpt = DEFAULT_LEDGER_URL,
        ledger_url_file: LedgerFileOpt = None,
    ) -> None:
        try:
            print(_ledger_url(ctx, ledger_url, ledger_url_file))
        except ConfigError as exc:
            print(f"error: {exc}")
            raise typer.Exit(2) from None

    return probe


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, DEFAULT_LEDGER_URL),
        ([], {"TRADEGUARD_LEDGER_URL": "postgresql://env@h/l"}, "postgresql://env@h/l"),
        ([], {"TRADEGUARD_LEDGER_URL_FILE": "FILE"}, "FROM-FILE"),
        (["--ledger-url-file", "FILE"], {}, "FROM-FILE"),
        # The command line wins over the environment, whichever of the two each gives.
        (
            ["--ledger-url", "sqlite:///cli"],
            {"TRADEGUARD_LEDGER_URL_FILE": "FILE"},
            "sqlite:///cli",
        ),
        (["--ledger-url-file", "FILE"], {"TRADEGUARD_LEDGER_URL": "sqlite:///env"}, "FROM-FILE"),
        # One source giving both is an error.
        (["--ledger-url", "sqlite:///cli", "--ledger-url-file", "FILE"], {}, "both given"),
        (
            [],
            {"TRADEGUARD_LEDGER_URL": "sqlite:///e", "TRADEGUARD_LEDGER_URL_FILE": "FILE"},
            "both given",
        ),
    ],
)
def test_the_ledger_url_comes_from_an_option_the_environment_or_a_file(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    from_file = f"postgresql://ledger:{SECRET}@db:5432/ledger"
    path = str(secret_file(tmp_path, from_file + "\n"))
    args = [path if a == "FILE" else a for a in args]
    env = {k: path if v == "FILE" else v for k, v in env.items()}
    result = CliRunner().invoke(ledger_probe(), args, env=env)
    if expected == "both given":
        assert result.exit_code == 2 and "--ledger-url and --ledger-url-file" in result.output
        assert SECRET not in result.output
    else:
        assert result.exit_code == 0, result.output
        assert result.output.strip() == (from_file if expected == "FROM-FILE" else expected)


@pytest.mark.parametrize("command", [["coordinator"], ["ha", "status"]])
def test_commands_taking_a_ledger_url_take_it_from_a_file_or_the_environment(
    command: list[str],
) -> None:
    cmd = get_command(app)
    for name in command:
        assert isinstance(cmd, TyperGroup)
        with cmd.make_context("tradeguard", [], resilient_parsing=True) as ctx:
            found = cmd.get_command(ctx, name)
        assert found is not None
        cmd = found
    options = {p.name: p for p in cmd.params}
    assert options["ledger_url"].envvar == "TRADEGUARD_LEDGER_URL"
    assert options["ledger_url_file"].envvar == "TRADEGUARD_LEDGER_URL_FILE"
