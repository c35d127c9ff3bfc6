"""Process configuration: one TOML file loaded into frozen dataclasses.

The key names are a contract used by checks outside the project: keep them. Domains, accounts
and aliases are not here: they live in the store (managed by the CLI) so every node sees them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ListenConfig:
    """Each a list of "host:port"; an empty list disables that listener."""

    smtp: tuple[str, ...] = ("127.0.0.1:2525",)
    submission: tuple[str, ...] = ()
    submissions: tuple[str, ...] = ()
    imap: tuple[str, ...] = ()
    imaps: tuple[str, ...] = ()
    pop3: tuple[str, ...] = ()
    pop3s: tuple[str, ...] = ()


@dataclass(frozen=True)
class StorageConfig:
    url: str = ""  # "" → sqlite:///<data_dir>/merpati.db


@dataclass(frozen=True)
class TlsConfig:
    cert: str = ""  # PEM file; "" → no TLS (STARTTLS not offered, implicit-TLS listeners refused)
    key: str = ""


@dataclass(frozen=True)
class AuthConfig:
    # As in Dovecot: 127.0.0.0/8 and ::1 count as secure, so LOGIN/AUTH work there without TLS.
    loopback_is_secure: bool = True


@dataclass(frozen=True)
class LimitsConfig:
    message_size: int = 52_428_800
    max_recipients: int = 1000
    max_line: int = 2048  # SMTP command line, CRLF included (Postfix line_length_limit)


@dataclass(frozen=True)
class SmtpConfig:
    # Networks ("10.0.0.0/8", "127.0.0.1/32") whose clients may relay; empty: nobody is trusted by address.
    trusted_networks: tuple[str, ...] = ()
    recipient_delimiter: str = "+"  # "" disables subaddressing
    max_received: int = 100  # more Received: fields than this → 554 5.4.6 (RFC 5321 §6.3)
    bare_line_endings: str = "reject"  # "reject" (550 5.5.2) or "normalize" (to CRLF); never ends DATA
    max_connections: int = 1000
    max_connections_per_ip: int = 50  # Postfix smtpd_client_connection_count_limit
    soft_error_limit: int = 10
    hard_error_limit: int = 20
    error_sleep: float = 1.0  # seconds, after the soft error limit (Postfix smtpd_error_sleep_time)
    # RFC 5321 §4.5.3.2 timeouts, in seconds.
    greeting_timeout: float = 300.0
    command_timeout: float = 300.0
    data_block_timeout: float = 180.0
    data_done_timeout: float = 600.0
    session_lifetime: float = 3600.0
    min_data_rate: int = 500  # bytes/s once a DATA transfer has run longer than data_block_timeout
    banner: str = "ESMTP Merpati"
    # Processes serving the MX listeners (SO_REUSEPORT); 0: one per CPU core (at most 8).
    workers: int = 0


@dataclass(frozen=True)
class DnsConfig:
    nameservers: tuple[str, ...] = ()  # "ip[:port]"; empty: the system's resolvers


@dataclass(frozen=True)
class Config:
    hostname: str = "localhost"
    data_dir: Path = Path("var")
    listen: ListenConfig = field(default_factory=ListenConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    source: Path | None = None  # the file this was loaded from (not a TOML key)

    @property
    def storage_url(self) -> str:
        return self.storage.url or f"sqlite:///{self.data_dir / 'merpati.db'}"
