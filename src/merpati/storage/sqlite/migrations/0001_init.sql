-- Merpati SQLite schema, version 1.
-- Metadata tables are scanned often; message bytes and the parsed form live in message_blobs,
-- which is only read by read_message/get_parsed, so metadata scans never touch them.
-- Ids use AUTOINCREMENT so an id is never reused after a delete (change events carry ids).

CREATE TABLE schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL
);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('uidvalidity', 0);

CREATE TABLE domains (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE              -- lower-case
);

CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id      INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    address        TEXT NOT NULL,          -- local part as given, domain lower-case
    address_key    TEXT NOT NULL UNIQUE,   -- lower(address): case-insensitive lookups
    password_hash  TEXT NOT NULL,
    quota_bytes    INTEGER NOT NULL DEFAULT 0,
    quota_messages INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX accounts_domain ON accounts(domain_id);

CREATE TABLE aliases (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    domain_id  INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    source     TEXT NOT NULL,              -- "local@domain" or "@domain"
    source_key TEXT NOT NULL UNIQUE
);
CREATE INDEX aliases_domain ON aliases(domain_id);

CREATE TABLE alias_targets (
    alias_id   INTEGER NOT NULL REFERENCES aliases(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    target     TEXT NOT NULL,
    target_key TEXT NOT NULL,
    PRIMARY KEY (alias_id, target_key)
);

CREATE TABLE mailboxes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    uidvalidity   INTEGER NOT NULL,
    uidnext       INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    special_use   TEXT,
    subscribed    INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, name)
);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox_id      INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid             INTEGER NOT NULL,
    modseq          INTEGER NOT NULL,
    flags           TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings, sorted
    seen            INTEGER NOT NULL DEFAULT 0,   -- '\Seen' in flags (for unseen counts)
    internaldate_us INTEGER NOT NULL,             -- microseconds since the epoch
    internaldate_tz INTEGER NOT NULL,             -- UTC offset in seconds, as given
    savedate_us     INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    subject         TEXT,
    message_id      TEXT,
    from_addr       TEXT,
    date_hdr        TEXT,
    preview         TEXT,
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);

CREATE TABLE message_blobs (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    data       BLOB NOT NULL,                 -- exactly the bytes IMAP serves
    parsed     TEXT NOT NULL                  -- ParsedMessage.to_json()
);

-- Expunged UIDs with the MODSEQ of their removal (for QRESYNC VANISHED later).
CREATE TABLE expunged (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
