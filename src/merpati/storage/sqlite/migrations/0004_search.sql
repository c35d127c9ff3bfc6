-- Merpati SQLite schema: the search index (SEARCH, SORT, THREAD; merpati.storage.sqlite.search).
-- One document per message content, shared by its copies through messages.search_id; the
-- full text in an FTS5 trigram index (substring search, any case after folding by the store).

CREATE TABLE search_docs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    sent_us          INTEGER,                    -- Date: header, microseconds since the epoch (UTC)
    sent_day         INTEGER,                    -- the Date: header's own calendar date, days since 1970-01-01
    subject_key      TEXT NOT NULL DEFAULT '',   -- RFC 5256 base subject, sort-folded
    reply            INTEGER NOT NULL DEFAULT 0, -- the subject was a reply or forward
    from_key         TEXT NOT NULL DEFAULT '',
    to_key           TEXT NOT NULL DEFAULT '',
    cc_key           TEXT NOT NULL DEFAULT '',
    display_from_key TEXT NOT NULL DEFAULT '',
    display_to_key   TEXT NOT NULL DEFAULT '',
    message_id       TEXT,                       -- normalised Message-ID (threading)
    refs             TEXT NOT NULL DEFAULT ''    -- normalised References ids, space-separated
);

CREATE TABLE search_headers (
    doc_id INTEGER NOT NULL REFERENCES search_docs(id) ON DELETE CASCADE,
    name   TEXT NOT NULL,                        -- lower-case field name
    n      INTEGER NOT NULL,                     -- position in the header
    value  TEXT NOT NULL,                        -- decoded (RFC 2047), folded
    PRIMARY KEY (doc_id, name, n)
) WITHOUT ROWID;

CREATE VIRTUAL TABLE search_fts USING fts5(
    headers, body, tokenize = 'trigram case_sensitive 1', detail = none
);

-- Documents whose text is not in search_fts yet: delivery only writes here (an FTS5 trigram
-- insert costs about 1 ms per 2 KB of text: too much for the SMTP 250 path); searches scan
-- these for their mailbox and an indexer moves them into search_fts in small batches.
CREATE TABLE search_pending (
    doc_id  INTEGER PRIMARY KEY REFERENCES search_docs(id) ON DELETE CASCADE,
    headers TEXT NOT NULL,
    body    TEXT NOT NULL
);

ALTER TABLE messages ADD COLUMN search_id INTEGER REFERENCES search_docs(id);
CREATE INDEX messages_search_id ON messages(search_id);
CREATE INDEX messages_unindexed ON messages(mailbox_id) WHERE search_id IS NULL;

-- The last message using a document takes it (and its full text, indexed or pending) along, in its transaction:
-- expunge, move, mailbox/account/domain deletion (foreign-key cascades fire triggers too).
CREATE TRIGGER messages_search_gc AFTER DELETE ON messages
WHEN old.search_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages WHERE search_id = old.search_id)
BEGIN
    DELETE FROM search_fts WHERE rowid = old.search_id;
    DELETE FROM search_docs WHERE id = old.search_id;
END;
