-- Merpati PostgreSQL schema, version 3: what IMAP and POP3 need beyond delivery.
--
-- * subscriptions: subscribed names (IMAP SUBSCRIBE, RFC 9051 §6.3.7) that no mailbox of the
--   account has. A mailbox's own subscription stays mailboxes.subscribed (it follows the mailbox
--   through RENAME); deleting a subscribed mailbox moves its name here, creating a mailbox whose
--   name is here moves it back, so a name is in at most one of the two places.
-- * accounts.used_bytes / used_messages: quota usage (RFC 9208), kept by every write that adds
--   or removes messages, in the same transaction (under the account row lock).
-- * messages.deleted: '\Deleted' = ANY(flags), kept like seen, for STATUS DELETED.
-- * expunged_modseq: QRESYNC's "expunged since MODSEQ n" without scanning every expunge.
-- Adding a column with a constant default is a catalog-only change (no table rewrite).

CREATE TABLE subscriptions (
    account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       text NOT NULL,
    PRIMARY KEY (account_id, name)
);

ALTER TABLE accounts ADD COLUMN used_bytes bigint NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN used_messages bigint NOT NULL DEFAULT 0;
UPDATE accounts a SET used_bytes = u.bytes, used_messages = u.n
FROM (SELECT b.account_id, sum(m.size) AS bytes, count(*) AS n
      FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id GROUP BY b.account_id) u
WHERE u.account_id = a.id;

ALTER TABLE messages ADD COLUMN deleted boolean NOT NULL DEFAULT false;
UPDATE messages SET deleted = true WHERE '\Deleted' = ANY(flags);

CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);
