-- Merpati PostgreSQL schema, version 3: what IMAP and POP3 need beyond delivery.
--
-- * subscriptions: subscribed names (IMAP SUBSCRIBE, RFC 9051 §6.3.7) that no mailbox of the
--   account has. A mailbox's own subscription stays mailboxes.subscribed (it follows the mailbox
--   through RENAME); deleting a subscribed mailbox moves its name here, creating a mailbox whose
--   name is here moves it back, so a name is in at most one of the two places.
-- * mailboxes.msg_count / msg_bytes: each mailbox's number and total size of messages, kept in
--   the same UPDATE that allocates UIDs or records an expunge (no extra statement per write).
--   An account's quota usage (RFC 9208) is their sum over its mailboxes: no message scans, and
--   deleting a mailbox needs no bookkeeping.
-- * messages.deleted: '\Deleted' = ANY(flags), kept like seen, for STATUS DELETED.
-- * expunged_modseq: QRESYNC's "expunged since MODSEQ n" without scanning every expunge.
-- Adding a column with a constant default is a catalog-only change (no table rewrite).

CREATE TABLE subscriptions (
    account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       text NOT NULL,
    PRIMARY KEY (account_id, name)
);

ALTER TABLE mailboxes ADD COLUMN msg_count bigint NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN msg_bytes bigint NOT NULL DEFAULT 0;
UPDATE mailboxes b SET msg_count = u.n, msg_bytes = u.bytes
FROM (SELECT mailbox_id, count(*) AS n, sum(size) AS bytes FROM messages GROUP BY mailbox_id) u
WHERE u.mailbox_id = b.id;

ALTER TABLE messages ADD COLUMN deleted boolean NOT NULL DEFAULT false;
UPDATE messages SET deleted = true WHERE '\Deleted' = ANY(flags);

CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);
