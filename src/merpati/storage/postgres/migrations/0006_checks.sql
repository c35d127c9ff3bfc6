-- Merpati PostgreSQL schema, version 6: state of the content checks (delivery.checks).
--
-- * greylist: one row per (client network, sender, recipient) triple, keyed by a digest of the
--   triple (checks_api.greylist_key), with first/last sight in ms since the epoch and whether a
--   retry has passed. Rows not seen for [checks.greylist] expire are deleted by the expiry job.
-- * bayes_tokens / bayes_totals: the per-account Bayesian filter: for each token (a signed 64-bit
--   digest of the word) in how many learned spam and ham messages it appeared, and how many
--   messages of each were learned.
-- * bayes_learned: which messages (SHA-256 of the bytes) were learned as what, so learning is
--   idempotent (every node of a cluster sees the same move) and relearning the other way
--   first unlearns.
-- Every row of an account goes with it (ON DELETE CASCADE).

CREATE TABLE greylist (
    key        text PRIMARY KEY,
    first_seen bigint NOT NULL,
    last_seen  bigint NOT NULL,
    passed     boolean NOT NULL DEFAULT false
);
CREATE INDEX greylist_last_seen ON greylist(last_seen);

CREATE TABLE bayes_tokens (
    account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    token      bigint NOT NULL,
    spam       integer NOT NULL DEFAULT 0,
    ham        integer NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, token)
);

CREATE TABLE bayes_totals (
    account_id bigint PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    spam       integer NOT NULL DEFAULT 0,
    ham        integer NOT NULL DEFAULT 0
);

CREATE TABLE bayes_learned (
    account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    digest     text NOT NULL,
    spam       boolean NOT NULL,
    learned_at bigint NOT NULL,
    PRIMARY KEY (account_id, digest)
);
