"""A real `merpati serve` subprocess for end-to-end tests.

    server = MerpatiServer(tmp_dir, host="127.1.0.2")      # writes config + TLS pair
    server.add_domain("merpati.test")                        # through the CLI
    alice = server.new_user("alice")                         # unique address, CLI `user add`
    server.start()                                           # waits for the 220 banner
    ... SMTP to (server.host, server.port) ...
    server.export(alice)                                     # list[bytes], in UID order
    server.kill(); server.start()                            # SIGKILL and restart, same data
    server.stop()                                            # SIGTERM, SIGKILL fallback

The tests' conftest shares one started server per module (fixture ``merpati``) and attaches
the tail of the server log to every failing test's report.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .net import assert_loopback, free_port, wait_for_banner

DEFAULT_DOMAIN = "merpati.test"
DEFAULT_HOSTNAME = "mx.merpati.test"
PASSWORD = "correct horse battery staple"


def merpati_command() -> list[str]:
    """The `merpati` console script beside this interpreter (the venv's), else `-c main()`."""
    script = Path(sys.executable).with_name("merpati")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from merpati.cli.main import main; sys.exit(main())"]


def write_self_signed(cert: Path, key: Path, hostname: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key.chmod(0o600)


def wait_listening(host: str, port: int, *, timeout: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise RuntimeError("the server process exited during start-up")
        try:
            socket.create_connection((host, port), timeout=2).close()
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {host}:{port}: {exc}") from None
            time.sleep(0.02)


class CliError(AssertionError):
    pass


class MerpatiServer:
    def __init__(
        self,
        root: Path | str,
        *,
        host: str,
        port: int | None = None,
        hostname: str = DEFAULT_HOSTNAME,
        message_size: int = 52_428_800,
        extra_smtp: dict[str, object] | None = None,
        start_timeout: float = 30.0,
        listeners: tuple[str, ...] = (),
        extra_config: str = "",
        dns: str | None = None,
    ) -> None:
        """``listeners``: other [listen] entries to serve ("imap", "pop3s", ...), each on a free port
        of ``host`` (``self.ports[name]``). ``extra_config``: raw TOML tables appended to the file
        (e.g. "[imap]\nidle_timeout = 5\n"); it must not repeat the tables written here.
        ``dns``: the "ip:port" of the loopback DNS server for ``[dns] nameservers`` (default: a
        shared empty one that answers NXDOMAIN for everything, so no test queries the machine's
        resolver); left out when ``extra_config`` has its own ``[dns]`` table."""
        assert_loopback(host)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self.hostname = hostname
        self.data_dir = self.root / "var"
        self.data_dir.mkdir(exist_ok=True)
        self.db_path = self.data_dir / "merpati.db"
        self.config_path = self.root / "merpati.toml"
        self.log_path = self.root / "server.log"
        self.cert = self.root / "cert.pem"
        self.key = self.root / "key.pem"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self._log_file = None
        self._seq = itertools.count(1)
        self._run_tag = secrets.token_hex(3)
        write_self_signed(self.cert, self.key, hostname)
        self.ports: dict[str, int] = {"smtp": self.port}
        listen = {name: [] for name in ("submission", "submissions", "imap", "imaps", "pop3", "pop3s")}
        for name in listeners:
            self.ports[name] = free_port(host)
            listen[name] = [f"{host}:{self.ports[name]}"]
        listen_lines = "".join(f"{k} = {_toml(v)}\n" for k, v in listen.items())
        smtp = {"trusted_networks": []}
        smtp.update(extra_smtp or {})
        smtp_lines = "\n".join(f"{k} = {_toml(v)}" for k, v in smtp.items())
        self.config_path.write_text(
            f'hostname = "{hostname}"\n'
            f'data_dir = "{self.data_dir}"\n'
            "[listen]\n"
            f'smtp = ["{host}:{self.port}"]\n'
            f"{listen_lines}"
            "[storage]\n"
            f'url = "sqlite:///{self.db_path}"\n'
            "[tls]\n"
            f'cert = "{self.cert}"\n'
            f'key = "{self.key}"\n'
            "[auth]\nloopback_is_secure = true\n"
            "[limits]\n"
            f"message_size = {message_size}\n"
            "[smtp]\n"
            f"{smtp_lines}\n"
            f"{_dns_table(dns, extra_config)}"
            f"{extra_config}"
        )

    # ---- the admin CLI ------------------------------------------------------------------

    def cli(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [*merpati_command(), "-c", str(self.config_path), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise CliError(
                f"`merpati {' '.join(args)}` exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def add_domain(self, domain: str) -> str:
        self.cli("domain", "add", domain)
        return domain

    def new_domain(self, prefix: str = "d") -> str:
        return self.add_domain(f"{prefix}-{self._run_tag}-{next(self._seq)}.merpati.test")

    def add_user(self, address: str, password: str = PASSWORD) -> str:
        self.cli("user", "add", address, "--password-stdin", input=password + "\n")
        return address

    def new_user(self, prefix: str = "user", domain: str = DEFAULT_DOMAIN) -> str:
        """A fresh user, unique in this server, so tests sharing a server never see each other's mail."""
        return self.add_user(f"{prefix}-{self._run_tag}-{next(self._seq)}@{domain}")

    def add_alias(self, source: str, *targets: str) -> None:
        self.cli("alias", "add", source, *targets)

    def mailbox_list(self, address: str) -> str:
        return self.cli("mailbox", "list", address).stdout

    def export(self, address: str, mailbox: str = "INBOX") -> list[bytes]:
        """Every message of one mailbox, byte for byte, in UID order (maildir export)."""
        out = Path(tempfile.mkdtemp(prefix="export-", dir=self.root))
        shutil.rmtree(out)  # `export` wants a new or empty folder; let it create it
        try:
            self.cli("export", address, str(out), "--format", "maildir", "--mailbox", mailbox)
            files = [p for sub in ("cur", "new") if (out / sub).is_dir() for p in (out / sub).iterdir()]
            return [p.read_bytes() for p in sorted(files, key=_maildir_uid)]
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def export_mbox(self, address: str, mailbox: str = "INBOX") -> list[bytes]:
        """The same through `export --format mbox` (mboxrd), split and unquoted here."""
        out = self.root / f"export-{secrets.token_hex(4)}.mbox"
        try:
            self.cli("export", address, str(out), "--format", "mbox", "--mailbox", mailbox)
            return split_mboxrd(out.read_bytes())
        finally:
            out.unlink(missing_ok=True)

    def message_count(self) -> int:
        """Messages in the whole store, read straight from SQLite (read-only)."""
        if not self.db_path.exists():
            return 0
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute("SELECT count(*) FROM messages").fetchone()[0]
        finally:
            con.close()

    # ---- the server process -------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running:
            raise RuntimeError("already running")
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"==== merpati serve starting (pid follows) ====\n".encode())
        self._log_file.flush()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [*merpati_command(), "-c", str(self.config_path), "serve"],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a Ctrl-C in the terminal does not reach it; we stop it ourselves
        )
        try:
            self.banner = wait_for_banner(self.host, self.port, timeout=self.start_timeout, alive=lambda: self.running)
            # The other listeners come up just after the MX one: wait until each accepts.
            for name, port in self.ports.items():
                if name != "smtp":
                    wait_listening(self.host, port, timeout=self.start_timeout, alive=lambda: self.running)
        except Exception as exc:
            code = self.proc.poll()
            self._reap(signal.SIGKILL)
            raise RuntimeError(
                f"merpati serve did not come up on {self.host}:{self.port} (exit {code}): {exc}\n"
                f"---- server log tail ----\n{self.log_tail()}"
            ) from None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL if it is still running after ``timeout``."""
        return self._reap(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL: no chance to flush or close anything (the durability test)."""
        return self._reap(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _reap(self, sig: int, timeout: float = 20.0) -> int | None:
        proc, self.proc = self.proc, None
        code = None
        if proc is not None:
            if proc.poll() is None:
                if sig == signal.SIGKILL:
                    _killpg(proc)  # a crash takes the whole process group, helpers included
                else:
                    proc.send_signal(sig)
                try:
                    code = proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    _killpg(proc)
                    code = proc.wait(10)
                    self._note(f"did not stop within {timeout}s of signal {sig}; SIGKILLed")
            else:
                code = proc.returncode
            self.last_exit = code
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def _note(self, text: str) -> None:
        with open(self.log_path, "ab") as f:
            f.write(f"==== test harness: {text} ====\n".encode())

    def log_tail(self, lines: int = 60) -> str:
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return "(no server log)"
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    def __enter__(self) -> "MerpatiServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_EMPTY_DNS: list = []  # one shared empty DNS server per test process, started on first use


def empty_dns_server() -> str:
    """The "ip:port" of a loopback DNS server authoritative for every name, with no records."""
    if not _EMPTY_DNS:
        from .dns_server import DnsServer

        soa = ["ns.invalid. hostmaster.invalid. 1 3600 600 86400 60"]
        _EMPTY_DNS.append(DnsServer({".": {"SOA": soa}}, zones=["."]).start())
    return _EMPTY_DNS[0].nameserver


def _dns_table(dns: str | None, extra_config: str) -> str:
    if re.search(r"(?m)^\[dns\]", extra_config):
        return ""
    return f'[dns]\nnameservers = ["{dns or empty_dns_server()}"]\ntimeout = 2.0\n'


def _killpg(proc: subprocess.Popen) -> None:
    """SIGKILL the group this harness started the server in (start_new_session: pgid == pid)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def split_mboxrd(data: bytes) -> list[bytes]:
    """mboxrd: each message is a ``From `` line, the message with ``>*From `` lines quoted by
    one more ``>``, then one empty line (an LF) as separator."""
    if not data:
        return []
    assert data.startswith(b"From "), data[:100]
    starts = [0] + [m.start() + 1 for m in re.finditer(rb"\n(?=From )", data)]
    messages = []
    for a, b in zip(starts, starts[1:] + [len(data)]):
        chunk = data[a:b]
        body = chunk[chunk.index(b"\n") + 1 :]
        assert body.endswith(b"\n"), chunk[-100:]
        body = body[:-1]
        messages.append(re.sub(rb"(?m)^>(>*From )", rb"\1", body))
    return messages


def _maildir_uid(path: Path) -> tuple[int, str]:
    # <time>.<uid>.<host>:2,<flags>
    m = re.match(r"\d+\.(\d+)\.", path.name)
    return (int(m.group(1)) if m else 1 << 62, path.name)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(value)
