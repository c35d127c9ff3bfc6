-- Merpati SQLite schema, version 3: what IMAP and POP3 need beyond delivery.
--
-- * subscriptions: subscribed names (IMAP SUBSCRIBE, RFC 9051 §6.3.7) that no mailbox of the
--   account has. A mailbox's own subscription stays mailboxes.subscribed (it follows the mailbox
--   through RENAME); deleting a subscribed mailbox moves its name here, creating a mailbox whose
--   name is here moves it back, so a name is in at most one of the two places.
-- * accounts.used_bytes / used_messages: quota usage (RFC 9208), kept by every write that adds
--   or removes messages, in the same transaction, so no delivery ever scans mailboxes.
-- * messages.deleted: '\Deleted' in flags, kept like seen, for STATUS DELETED without JSON.
-- * expunged_modseq: QRESYNC's "expunged since MODSEQ n" without scanning every expunge.

CREATE TABLE subscriptions (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);

ALTER TABLE accounts ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN used_messages INTEGER NOT NULL DEFAULT 0;
UPDATE accounts SET
    used_bytes = coalesce((SELECT sum(m.size) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
                           WHERE b.account_id = accounts.id), 0),
    used_messages = (SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
                     WHERE b.account_id = accounts.id);

ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET deleted = 1 WHERE EXISTS (SELECT 1 FROM json_each(messages.flags) WHERE value = '\Deleted');

CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);
