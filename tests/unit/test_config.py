"""The config contract: every documented key loads; unknown or mistyped keys name their path."""

from __future__ import annotations

from pathlib import Path

import pytest

from merpati.config import ConfigError, load_config

CONTRACT = """
hostname = "mx.example.test"
data_dir = "var"
[listen]
smtp = ["127.0.0.1:2525"]
submission = ["127.0.0.1:2587"]
submissions = ["127.0.0.1:2465"]
imap = ["127.0.0.1:2143"]
imaps = ["127.0.0.1:2993"]
pop3 = ["127.0.0.1:2110"]
pop3s = ["127.0.0.1:2995"]
[storage]
url = "sqlite:///srv/mail/merpati.db"
[tls]
cert = "tls/cert.pem"
key = "/etc/tls/key.pem"
[auth]
loopback_is_secure = false
[limits]
message_size = 1000
[dns]
nameservers = ["127.0.0.1:5353"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "merpati.toml"
    path.write_text(text)
    return path


def test_contract_keys_load_and_relative_paths_resolve(tmp_path):
    config = load_config(write(tmp_path, CONTRACT))
    assert config.hostname == "mx.example.test"
    assert config.data_dir == tmp_path / "var"
    assert config.listen.imaps == ("127.0.0.1:2993",)
    assert config.storage_url == "sqlite:///srv/mail/merpati.db"
    assert config.tls.cert == str(tmp_path / "tls/cert.pem")
    assert config.tls.key == "/etc/tls/key.pem"
    assert config.auth.loopback_is_secure is False
    assert config.limits.message_size == 1000
    assert config.dns.nameservers == ("127.0.0.1:5353",)


def test_defaults_put_the_database_in_the_data_dir(tmp_path):
    config = load_config(write(tmp_path, 'hostname = "h"\n'))
    assert config.storage_url == f"sqlite:///{tmp_path / 'var' / 'merpati.db'}"


def test_relative_sqlite_url_resolves_against_the_config_folder(tmp_path):
    config = load_config(write(tmp_path, '[storage]\nurl = "sqlite:db/m.db"\n'))
    assert config.storage_url == f"sqlite:///{str(tmp_path / 'db/m.db').lstrip('/')}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hostnme = 'x'", "unknown configuration key: hostnme"),
        ("[listen]\nsmtpx = []", "unknown configuration key: listen.smtpx"),
        ("[listen]\nsmtp = '127.0.0.1:25'", "listen.smtp: expected a list"),
        ("[listen]\nsmtp = [25]", "listen.smtp[0]: expected str"),
        ("[limits]\nmessage_size = '10'", "limits.message_size: expected int"),
        ("[auth]\nloopback_is_secure = 1", "auth.loopback_is_secure: expected bool"),
        ("[limits]\nmessage_size = true", "limits.message_size: expected int"),
        ("listen = 3", "listen: expected a table"),
        ("hostname = ", "invalid TOML"),
    ],
)
def test_bad_keys_name_their_path(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(write(tmp_path, text))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")
