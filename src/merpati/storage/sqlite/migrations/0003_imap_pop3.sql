-- Merpati SQLite schema, version 3: what IMAP and POP3 need beyond delivery.
--
-- * subscriptions: subscribed names (IMAP SUBSCRIBE, RFC 9051 §6.3.7) that no mailbox of the
--   account has. A mailbox's own subscription stays mailboxes.subscribed (it follows the mailbox
--   through RENAME); deleting a subscribed mailbox moves its name here, creating a mailbox whose
--   name is here moves it back, so a name is in at most one of the two places.
-- * mailboxes.msg_count / msg_bytes: each mailbox's number and total size of messages, kept in
--   the same UPDATE that allocates UIDs or records an expunge (no extra statement per write).
--   An account's quota usage (RFC 9208) is their sum over its mailboxes: no message scans, and
--   deleting a mailbox needs no bookkeeping.
-- * messages.deleted: '\Deleted' in flags, kept like seen, for STATUS DELETED without JSON.
-- * expunged_modseq: QRESYNC's "expunged since MODSEQ n" without scanning every expunge.

CREATE TABLE subscriptions (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);

ALTER TABLE mailboxes ADD COLUMN msg_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN msg_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET
    msg_count = (SELECT count(*) FROM messages WHERE mailbox_id = mailboxes.id),
    msg_bytes = (SELECT coalesce(sum(size), 0) FROM messages WHERE mailbox_id = mailboxes.id);

ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET deleted = 1 WHERE EXISTS (SELECT 1 FROM json_each(messages.flags) WHERE value = '\Deleted');

CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);
