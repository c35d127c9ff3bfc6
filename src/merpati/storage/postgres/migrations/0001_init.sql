-- Merpati PostgreSQL schema, version 1 (same model as the SQLite schema).
-- Message bytes live in message_blobs (bytea), away from the metadata rows.

CREATE TABLE schema_version (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE counters (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO counters (name, value) VALUES ('uidvalidity', 0);

CREATE TABLE domains (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE
);

CREATE TABLE accounts (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id      bigint NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    address        text NOT NULL,
    address_key    text NOT NULL UNIQUE,
    password_hash  text NOT NULL,
    quota_bytes    bigint NOT NULL DEFAULT 0,
    quota_messages bigint NOT NULL DEFAULT 0
);
CREATE INDEX accounts_domain ON accounts(domain_id);

CREATE TABLE aliases (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id  bigint NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    source     text NOT NULL,
    source_key text NOT NULL UNIQUE
);
CREATE INDEX aliases_domain ON aliases(domain_id);

CREATE TABLE alias_targets (
    alias_id   bigint NOT NULL REFERENCES aliases(id) ON DELETE CASCADE,
    position   integer NOT NULL,
    target     text NOT NULL,
    target_key text NOT NULL,
    PRIMARY KEY (alias_id, target_key)
);

CREATE TABLE mailboxes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name          text NOT NULL,
    uidvalidity   bigint NOT NULL,
    uidnext       bigint NOT NULL DEFAULT 1,
    highestmodseq bigint NOT NULL DEFAULT 1,
    special_use   text,
    subscribed    boolean NOT NULL DEFAULT true,
    UNIQUE (account_id, name)
);

CREATE TABLE messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mailbox_id      bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid             bigint NOT NULL,
    modseq          bigint NOT NULL,
    flags           text[] NOT NULL DEFAULT '{}',  -- sorted
    seen            boolean NOT NULL DEFAULT false,
    internaldate_us bigint NOT NULL,
    internaldate_tz integer NOT NULL,
    savedate_us     bigint NOT NULL,
    size            bigint NOT NULL,
    subject         text,
    message_id      text,
    from_addr       text,
    date_hdr        text,
    preview         text,
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);

CREATE TABLE message_blobs (
    message_id bigint PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    data       bytea NOT NULL,
    parsed     text NOT NULL
);

CREATE TABLE expunged (
    mailbox_id bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid        bigint NOT NULL,
    modseq     bigint NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
