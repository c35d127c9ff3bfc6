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
    # Verified credentials kept in memory under a keyed hash of the password (Dovecot's auth cache).
    cache_ttl: float = 300.0  # seconds; 0 disables the cache
    cache_size: int = 10_000
    # Failed logins: a delay that doubles per recent failure of the same IP or account, up to the cap
    # (Dovecot's auth_failure_delay is 2 s flat; we grow from a smaller start).
    failure_delay: float = 0.5
    max_failure_delay: float = 15.0
    failure_window: float = 900.0  # seconds a failure counts for


@dataclass(frozen=True)
class ImapConfig:
    max_line: int = 65_536  # after login (Dovecot imap_max_line_length)
    max_line_prelogin: int = 8_192
    idle_timeout: float = 1800.0  # RFC 9051 §5.4: at least 30 minutes
    prelogin_timeout: float = 60.0
    max_connections: int = 10_000
    max_connections_per_ip: int = 100
    max_user_connections_per_ip: int = 10  # Dovecot mail_max_userip_connections
    literal_plus: bool = True  # false: advertise LITERAL- and refuse {n+} over 4096 octets (RFC 7888)


@dataclass(frozen=True)
class Pop3Config:
    retr_marks_seen: bool = False
    idle_timeout: float = 600.0  # RFC 1939 §3: at least 10 minutes
    login_delay: int = 0  # seconds between two logins of one account (RFC 2449 LOGIN-DELAY); 0: none
    max_connections: int = 1000
    max_connections_per_ip: int = 50


@dataclass(frozen=True)
class SubmissionConfig:
    max_messages_per_hour: int = 500  # per user; 0: unlimited
    max_recipients: int = 100  # per message


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
    timeout: float = 5.0  # seconds per query, all retries included


@dataclass(frozen=True)
class QueueConfig:
    bind_address: str = ""  # source address of outbound connections (Postfix smtp_bind_address); "": any
    # Durations: "30s", "5m", "1h20m", "5d". After the last step the last interval repeats.
    retry_schedule: tuple[str, ...] = ("5m", "10m", "20m", "40m", "1h20m", "2h")
    lifetime: str = "5d"
    delay_warning: str = "4h"  # "" or "0": no delay warnings
    concurrency: int = 20  # deliveries in flight per node
    connect_timeout: float = 30.0
    port: int = 25  # port of the MX hosts (tests point it elsewhere only with a reason)


@dataclass(frozen=True)
class RelayConfig:
    host: str = ""  # smarthost; "": deliver to the MX of each domain
    port: int = 587
    username: str = ""
    password: str = ""


@dataclass(frozen=True)
class RspamdConfig:
    url: str = ""  # e.g. "http://127.0.0.1:11333"; "": not used
    timeout: float = 15.0
    password: str = ""  # rspamd controller/normal worker password, when set


@dataclass(frozen=True)
class ClamavConfig:
    address: str = ""  # "host:port" or the path of clamd's Unix socket; "": not used
    timeout: float = 30.0


@dataclass(frozen=True)
class DnsblConfig:
    zones: tuple[str, ...] = ()  # e.g. "zen.spamhaus.org" or "zen.example=127.0.0.2,127.0.0.3:5.0"
    score: float = 5.0  # per listing, unless the zone entry names its own
    reject: bool = False  # a listing rejects at RCPT (554 5.7.1) instead of scoring


@dataclass(frozen=True)
class GreylistConfig:
    enabled: bool = False
    delay: str = "5m"  # how long an unknown triple must wait before its retry passes
    expire: str = "35d"  # triples not seen for this long are forgotten


@dataclass(frozen=True)
class SenderAuthConfig:
    """SPF, DKIM and DMARC on receipt (issue 5), and what their failures do."""

    enabled: bool = True
    dmarc_enforce: bool = True  # p=reject → 550 5.7.1, p=quarantine → Junk
    spf_fail: str = "none"  # SPF -all without a DMARC verdict: "none", "junk" or "reject"


@dataclass(frozen=True)
class ChecksConfig:
    enabled: bool = True
    junk_score: float = 6.0  # at or above: delivered to Junk
    reject_score: float = 15.0  # at or above: 550 5.7.1 at the end of DATA
    on_failure: str = "tempfail"  # a check engine down or slow: "tempfail" (451 4.7.1) or "accept"
    hooks: str = ""  # a Python module (dotted name, or a .py path) with async stage hooks
    helo_checks: bool = True
    iprev: bool = True
    pregreet: bool = True  # talk before the banner on port 25 → 554
    pregreet_wait: float = 0.0  # seconds to hold the banner back to catch early talkers
    bayes: bool = True
    rspamd: RspamdConfig = field(default_factory=RspamdConfig)
    clamav: ClamavConfig = field(default_factory=ClamavConfig)
    dnsbl: DnsblConfig = field(default_factory=DnsblConfig)
    greylist: GreylistConfig = field(default_factory=GreylistConfig)
    sender_auth: SenderAuthConfig = field(default_factory=SenderAuthConfig)


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
    imap: ImapConfig = field(default_factory=ImapConfig)
    pop3: Pop3Config = field(default_factory=Pop3Config)
    submission: SubmissionConfig = field(default_factory=SubmissionConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    relay: RelayConfig = field(default_factory=RelayConfig)
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    source: Path | None = None  # the file this was loaded from (not a TOML key)

    @property
    def storage_url(self) -> str:
        return self.storage.url or f"sqlite:///{self.data_dir / 'merpati.db'}"
