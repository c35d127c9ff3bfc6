"""The `merpati` command driven in-process (and once as a real subprocess) on SQLite."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from merpati.admin.passwords import verify_password
from merpati.cli import common
from merpati.cli.main import main
from merpati.config import load_config

MERPATI = Path(sys.executable).parent / "merpati"


@pytest.fixture
def cfg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "var" / "merpati.toml"
    assert main(["-c", str(path), "init", "--domain", "example.test"]) == 0
    capsys.readouterr()
    return path


def cli(cfg: Path, *argv: str, stdin: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> int:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main([*argv, "-c", str(cfg)])  # -c is accepted after the subcommand too


def error_of(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("merpati: error: ")
    return lines[0]


# -- init -------------------------------------------------------------------------------------------


def test_init_writes_a_loadable_config_with_every_contract_key(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "var" / "merpati.toml"
    argv = ["-c", str(path), "init", "--hostname", "mx.example.test", "--domain", "example.test",
            "--demo-user", "demo@example.test"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    raw = tomllib.loads(path.read_text())
    assert set(raw) >= {"hostname", "data_dir", "listen", "storage", "tls", "auth", "limits"}
    assert raw["listen"] == {"smtp": ["127.0.0.1:2525"], "submission": ["127.0.0.1:5870"],
                             "submissions": ["127.0.0.1:4650"], "imap": ["127.0.0.1:1430"],
                             "imaps": ["127.0.0.1:9930"], "pop3": ["127.0.0.1:1100"], "pop3s": ["127.0.0.1:9950"]}
    assert raw["auth"] == {"loopback_is_secure": True}
    assert raw["limits"]["message_size"] == 52428800
    config = load_config(path)
    assert config.hostname == "mx.example.test"
    assert config.data_dir == path.parent
    assert config.storage_url == f"sqlite:///{path.parent / 'merpati.db'}"
    assert Path(config.tls.cert).is_file() and Path(config.tls.key).is_file()
    assert stat.S_IMODE(os.stat(config.tls.key).st_mode) == 0o600
    assert (path.parent / "merpati.db").exists()

    line = next(x for x in out.splitlines() if x.startswith("demo user: "))
    words = line.split()
    assert words[:3] == ["demo", "user:", "demo@example.test"] and words[3] == "password:"
    assert main(["-c", str(path), "user", "list"]) == 0
    assert capsys.readouterr().out.split() == ["demo@example.test"]
    assert _password_ok(path, "demo@example.test", words[4])


def _password_ok(cfg: Path, address: str, password: str) -> bool:
    import asyncio

    from merpati.storage import open_store

    async def check() -> bool:
        store = await open_store(load_config(cfg).storage_url)
        try:
            account = await store.get_account(address)
            return account is not None and verify_password(account.password_hash, password)
        finally:
            await store.close()

    return asyncio.run(check())


def test_init_refuses_to_overwrite_and_force_keeps_the_store(cfg: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["-c", str(cfg), "init"]) == 1
    assert "exists already" in error_of(capsys)
    assert main(["-c", str(cfg), "init", "--force", "--hostname", "new.test", "--demo-user", "d@other.test"]) == 0
    assert "keeping the existing certificate" in capsys.readouterr().out
    assert load_config(cfg).hostname == "new.test"
    assert cli(cfg, "domain", "list") == 0
    assert capsys.readouterr().out.split() == ["example.test", "other.test"]


def test_init_with_a_separate_data_dir_and_env_config(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "etc" / "m.toml"
    monkeypatch.setenv("MERPATI_CONFIG", str(path))
    assert main(["init", "--data-dir", str(tmp_path / "data")]) == 0
    config = load_config(path)
    assert config.data_dir == tmp_path / "data"
    assert (tmp_path / "data" / "merpati.db").exists() and (tmp_path / "data" / "tls" / "cert.pem").exists()
    assert main(["domain", "list"]) == 0  # found through $MERPATI_CONFIG


def test_init_rejects_half_a_tls_pair(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["-c", str(tmp_path / "m.toml"), "init", "--tls-cert", "x.pem"]) == 1
    assert "--tls-key" in error_of(capsys)


# -- errors -----------------------------------------------------------------------------------------


def test_missing_config_is_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["-c", str(tmp_path / "none.toml"), "domain", "list"]) == 1
    assert "no such config file" in error_of(capsys)


def test_bad_config_is_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.toml"
    path.write_text('hostname = "x"\nbogus = 1\n')
    assert main(["domain", "list", "-c", str(path)]) == 1
    assert "unknown configuration key: bogus" in error_of(capsys)


def test_usage_error_is_one_line(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        main(["domain", "frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice" in error_of(capsys)


# -- domain / user / alias / mailbox ----------------------------------------------------------------


def test_domain_commands(cfg: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli(cfg, "domain", "add", "Other.TEST") == 0
    assert cli(cfg, "domain", "list") == 0
    assert capsys.readouterr().out.split()[-2:] == ["example.test", "other.test"]
    assert cli(cfg, "domain", "add", "other.test") == 1
    assert "already exists" in error_of(capsys)
    assert cli(cfg, "domain", "add", "bad domain") == 1
    assert "invalid domain name" in error_of(capsys)
    assert cli(cfg, "domain", "remove", "other.test") == 0
    assert cli(cfg, "domain", "remove", "other.test") == 1
    assert "unknown domain: other.test" in error_of(capsys)


def test_user_commands(cfg: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert cli(cfg, "user", "add", "joe@example.test", stdin="s3cret\n", monkeypatch=monkeypatch) == 0
    assert capsys.readouterr().out == "added user joe@example.test\n"
    assert _password_ok(cfg, "joe@example.test", "s3cret")
    assert cli(cfg, "user", "add", "--password-stdin", "JOE@example.test", stdin="x\n", monkeypatch=monkeypatch) == 1
    assert "already exists" in error_of(capsys)
    assert cli(cfg, "user", "add", "joe@nowhere.test", stdin="x\n", monkeypatch=monkeypatch) == 1
    assert "unknown domain: nowhere.test" in error_of(capsys)
    assert cli(cfg, "user", "add", "not-an-address", stdin="x\n", monkeypatch=monkeypatch) == 1
    assert "invalid address" in error_of(capsys)
    assert cli(cfg, "user", "add", "ann@example.test", stdin="", monkeypatch=monkeypatch) == 1
    assert "no password" in error_of(capsys)

    assert cli(cfg, "user", "passwd", "joe@example.test", "--password-stdin", stdin="n3w\r\n", monkeypatch=monkeypatch) == 0
    assert _password_ok(cfg, "joe@example.test", "n3w")
    assert cli(cfg, "user", "passwd", "zed@example.test", stdin="x\n", monkeypatch=monkeypatch) == 1
    assert "unknown user: zed@example.test" in error_of(capsys)

    assert cli(cfg, "user", "list") == 0
    assert capsys.readouterr().out == "joe@example.test\n"
    assert cli(cfg, "user", "list", "nowhere.test") == 1
    assert "unknown domain" in error_of(capsys)
    assert cli(cfg, "user", "remove", "joe@example.test") == 0
    assert cli(cfg, "user", "remove", "joe@example.test") == 1
    assert "unknown user" in error_of(capsys)


def test_password_prompt_on_a_terminal(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["pw", "pw", "a", "b"])
    prompt = lambda _text: next(answers)  # noqa: E731
    assert common.read_password(from_stdin=False, stdin=Tty(), prompt=prompt) == "pw"
    with pytest.raises(common.UserError, match="do not match"):
        common.read_password(from_stdin=False, stdin=Tty(), prompt=prompt)
    assert common.read_password(from_stdin=True, stdin=Tty("line\n"), prompt=prompt) == "line"


def test_alias_commands(cfg: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli(cfg, "alias", "add", "info@example.test", "a@example.test", "b@remote.test") == 0
    assert cli(cfg, "alias", "add", "@example.test", "catch@example.test") == 0
    assert cli(cfg, "alias", "add", "info@nowhere.test", "a@example.test") == 1
    assert "unknown domain" in error_of(capsys)
    assert cli(cfg, "alias", "add", "info@example.test", "not an address") == 1
    assert "invalid address" in error_of(capsys)
    assert cli(cfg, "alias", "list") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "@example.test -> catch@example.test"
    assert out[1].startswith("info@example.test -> ") and "b@remote.test" in out[1]
    assert cli(cfg, "alias", "remove", "info@example.test", "a@example.test") == 0
    assert cli(cfg, "alias", "remove", "info@example.test") == 0
    assert cli(cfg, "alias", "remove", "info@example.test") == 1
    assert "unknown alias" in error_of(capsys)


def test_mailbox_list(cfg: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert cli(cfg, "user", "add", "joe@example.test", stdin="pw\n", monkeypatch=monkeypatch) == 0
    capsys.readouterr()
    assert cli(cfg, "mailbox", "list", "joe@example.test") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "MESSAGES", "UNSEEN", "SIZE"]
    assert {line.split()[0] for line in lines[1:]} >= {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
    assert all(line.split()[1:] == ["0", "0", "0"] for line in lines[1:])
    assert cli(cfg, "mailbox", "list", "nobody@example.test") == 1
    assert "unknown user" in error_of(capsys)


# -- serve ------------------------------------------------------------------------------------------


def test_serve_runs_app_with_the_loaded_config(cfg: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import types

    seen = []

    async def fake_run(config, *, smtp_worker=None) -> None:  # type: ignore[no-untyped-def]
        seen.append((config, smtp_worker))

    monkeypatch.setitem(sys.modules, "merpati.app", types.SimpleNamespace(run=fake_run))
    import merpati

    monkeypatch.setattr(merpati, "app", sys.modules["merpati.app"], raising=False)
    assert main(["-c", str(cfg), "serve"]) == 0
    assert seen and seen[0][0].source == cfg.resolve() and seen[0][1] is None
    assert main(["-c", str(cfg), "serve", "--smtp-worker", "2"]) == 0
    assert seen[1][1] == 2


# -- the real console script --------------------------------------------------------------------------


def test_console_script(tmp_path: Path) -> None:
    if not MERPATI.exists():
        pytest.skip(f"{MERPATI} is not installed")
    path = tmp_path / "var" / "merpati.toml"
    env = {**os.environ, "MERPATI_CONFIG": str(path)}
    done = subprocess.run([str(MERPATI), "init", "--domain", "example.test", "--demo-user", "demo@example.test"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "demo user: demo@example.test password: " in done.stdout
    done = subprocess.run([str(MERPATI), "user", "add", "demo@example.test"], input="pw\n",
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1
    assert done.stderr == "merpati: error: user demo@example.test already exists\n"


def test_bad_storage_url_is_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.toml"
    assert main(["-c", str(path), "init", "--storage-url", "mysql://x/y"]) == 1
    assert "unsupported storage URL" in error_of(capsys)
    assert not path.exists() and not list(tmp_path.glob("*.toml*"))


def test_console_script_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    import signal
    import socket
    import time

    if not MERPATI.exists():
        pytest.skip(f"{MERPATI} is not installed")
    path = tmp_path / "merpati.toml"
    assert main(["-c", str(path), "init", "--domain", "example.test"]) == 0
    text = path.read_text()
    for fixed in ("2525", "5870", "4650", "1430", "9930", "1100", "9950"):  # every listener on a free port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        text = text.replace(f"127.0.0.1:{fixed}", f"127.0.0.1:{port}")
        if fixed == "2525":
            smtp_port = port
    # no DNS leaves loopback: a dead loopback nameserver
    path.write_text(text + '\n[dns]\nnameservers = ["127.0.0.1:9"]\ntimeout = 1.0\n')
    port = smtp_port
    proc = subprocess.Popen([str(MERPATI), "-c", str(path), "serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    assert conn.recv(512).startswith(b"220")
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail(f"serve did not listen: {proc.communicate(timeout=5)[0]}")
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=40)[0]
        assert proc.returncode == 0, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
