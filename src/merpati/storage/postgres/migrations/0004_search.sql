-- Merpati PostgreSQL schema: the search index (SEARCH, SORT, THREAD; merpati.storage.postgres.search).
-- One document per message content, shared by its copies through messages.search_id; the
-- folded full text in search_text with pg_trgm GIN indexes (substring LIKE of 3+ characters).
-- pg_trgm is a trusted extension (PostgreSQL 13+): a database owner may create it. Without
-- it (no privilege, extension not shipped) search still works, by scanning the mailbox.

DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
    RAISE NOTICE 'pg_trgm unavailable (%): full-text search will scan mailboxes', SQLERRM;
END
$$;

CREATE TABLE search_docs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sent_us          bigint,
    sent_day         integer,
    subject_key      text NOT NULL DEFAULT '',
    reply            boolean NOT NULL DEFAULT false,
    from_key         text NOT NULL DEFAULT '',
    to_key           text NOT NULL DEFAULT '',
    cc_key           text NOT NULL DEFAULT '',
    display_from_key text NOT NULL DEFAULT '',
    display_to_key   text NOT NULL DEFAULT '',
    message_id       text,
    refs             text NOT NULL DEFAULT ''
);

CREATE TABLE search_text (
    doc_id  bigint PRIMARY KEY REFERENCES search_docs(id) ON DELETE CASCADE,
    headers text NOT NULL,
    body    text NOT NULL
);

-- Documents whose text is not in search_text yet: delivery only writes here (a pg_trgm GIN
-- insert costs milliseconds per message); searches scan these for their mailbox and an
-- indexer moves them into search_text in small batches (FOR UPDATE SKIP LOCKED across nodes).
CREATE TABLE search_pending (
    doc_id  bigint PRIMARY KEY REFERENCES search_docs(id) ON DELETE CASCADE,
    headers text NOT NULL,
    body    text NOT NULL
);

CREATE TABLE search_headers (
    doc_id bigint NOT NULL REFERENCES search_docs(id) ON DELETE CASCADE,
    name   text NOT NULL,
    n      integer NOT NULL,
    value  text NOT NULL,
    PRIMARY KEY (doc_id, name, n)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX search_text_body_trgm ON search_text USING gin (body gin_trgm_ops)';
        EXECUTE 'CREATE INDEX search_text_headers_trgm ON search_text USING gin (headers gin_trgm_ops)';
    END IF;
END
$$;

ALTER TABLE messages ADD COLUMN search_id bigint REFERENCES search_docs(id);
CREATE INDEX messages_search_id ON messages(search_id);
CREATE INDEX messages_unindexed ON messages(mailbox_id) WHERE search_id IS NULL;

-- The last message using a document takes it along, in its transaction. The document row is
-- locked first, so two transactions removing its last two users cannot both keep it.
CREATE FUNCTION merpati_search_gc() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM search_docs WHERE id = OLD.search_id FOR UPDATE;
    IF NOT EXISTS (SELECT 1 FROM messages WHERE search_id = OLD.search_id) THEN
        DELETE FROM search_docs WHERE id = OLD.search_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_search_gc AFTER DELETE ON messages
FOR EACH ROW WHEN (OLD.search_id IS NOT NULL) EXECUTE FUNCTION merpati_search_gc();
