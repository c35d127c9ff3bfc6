-- Merpati PostgreSQL schema, version 5: the outbound queue and the DKIM signing keys.
-- A queued message holds its bytes once; its recipients are grouped per destination domain
-- into items, the unit of scheduling and of claiming (lease_owner/lease_until_ms: a node that
-- dies lets its leases expire and another takes the items over). Times are epoch milliseconds.

CREATE TABLE queue_messages (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue_id   TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL DEFAULT 'mail',    -- 'mail' or 'dsn' (a DSN never gets a DSN)
    sender     TEXT NOT NULL,                   -- '' is the null reverse-path
    origin     TEXT NOT NULL DEFAULT '',        -- submitting account, '' for relayed mail
    envid      TEXT,
    ret        TEXT,
    smtputf8   boolean NOT NULL DEFAULT false,
    body_type  TEXT,
    created_ms bigint NOT NULL,
    size       INTEGER NOT NULL,
    data       bytea NOT NULL
);

CREATE TABLE queue_items (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      bigint NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE,
    domain          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms bigint NOT NULL,
    lease_owner     TEXT,
    lease_until_ms  bigint NOT NULL DEFAULT 0,
    UNIQUE (message_id, domain)
);
CREATE INDEX queue_items_due ON queue_items(next_attempt_ms);

CREATE TABLE queue_recipients (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  bigint NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE,
    domain      TEXT NOT NULL,
    address     TEXT NOT NULL,
    notify      TEXT,                           -- RFC 3461 NOTIFY, comma-separated; NULL: not given
    orcpt       TEXT,
    state       TEXT NOT NULL DEFAULT 'queued', -- queued / delivered / failed
    last_code   INTEGER,
    last_status TEXT,
    last_text   TEXT,
    remote      TEXT,
    warned      boolean NOT NULL DEFAULT false
);
CREATE INDEX queue_recipients_message ON queue_recipients(message_id, domain);

CREATE TABLE dkim_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain      TEXT NOT NULL,                  -- lower-case
    selector    TEXT NOT NULL,
    algorithm   TEXT NOT NULL,                  -- rsa-sha256 / ed25519-sha256
    private_key TEXT NOT NULL,                  -- PEM, PKCS#8
    public_key  TEXT NOT NULL,                  -- base64, the p= tag
    created_ms  bigint NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    UNIQUE (domain, selector)
);
