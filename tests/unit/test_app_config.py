"""Start-up refuses what it cannot serve, instead of silently ignoring it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from merpati.app import ALL_LISTENERS, IMPLEMENTED_LISTENERS, check_config, smtp_worker_count
from merpati.config import Config, ConfigError
from merpati.config.schema import ListenConfig, SmtpConfig


def test_every_listener_is_implemented():
    assert set(ALL_LISTENERS) <= set(IMPLEMENTED_LISTENERS)


def test_empty_lists_disable_listeners():
    check_config(Config(listen=ListenConfig(smtp=(), imap=(), pop3=())))


@pytest.mark.parametrize(
    ("smtp", "message"),
    [
        (SmtpConfig(bare_line_endings="accept"), "smtp.bare_line_endings"),
        (SmtpConfig(trusted_networks=("10.0.0.0/33",)), "smtp.trusted_networks"),
        (SmtpConfig(workers=-1), "smtp.workers"),
    ],
)
def test_bad_smtp_settings_name_their_key(smtp, message):
    with pytest.raises(ConfigError, match=message):
        check_config(Config(smtp=smtp))


def test_bad_listen_address_names_its_key():
    with pytest.raises(ConfigError, match="listen.smtp"):
        check_config(Config(listen=ListenConfig(smtp=("127.0.0.1",))))


def test_worker_count():
    assert smtp_worker_count(Config()) == 1  # no config file: workers could not read it
    with_file = Config(source=__import__("pathlib").Path("/x.toml"), smtp=SmtpConfig(workers=3))
    assert smtp_worker_count(with_file) == 3
    assert smtp_worker_count(dataclasses.replace(with_file, listen=ListenConfig(smtp=()))) == 1


def test_serve_refuses_a_bad_listener_address_with_one_line(tmp_path):
    config = tmp_path / "m.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[listen]\nsmtp = []\nimap = ["127.0.0.1"]\n')
    proc = subprocess.run(
        [sys.executable, "-m", "merpati.cli.main", "-c", str(config), "serve"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "listen.imap" in proc.stderr
    assert "Traceback" not in proc.stderr
