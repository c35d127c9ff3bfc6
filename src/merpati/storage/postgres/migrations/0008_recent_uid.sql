-- Merpati PostgreSQL schema, version 8: IMAP4rev1 \Recent is kept in the store.
-- mailboxes.recent_uid is the highest UID already handed out as \Recent (Dovecot keeps the same
-- thing in its index header as "first recent uid" - 1). A session that selects the mailbox
-- read-write claims every UID above it (MailStore.claim_recent raises it atomically under the
-- row lock and returns the previous value), so each message is \Recent for exactly one session
-- across nodes and restarts. Existing mailboxes start at uidnext - 1: an upgrade makes no old
-- mail recent. A new mailbox starts at 0 (everything it receives is recent once).
-- Adding a column with a constant default is a catalog-only change (no table rewrite).

ALTER TABLE mailboxes ADD COLUMN recent_uid bigint NOT NULL DEFAULT 0;
UPDATE mailboxes SET recent_uid = uidnext - 1 WHERE uidnext > 1;
