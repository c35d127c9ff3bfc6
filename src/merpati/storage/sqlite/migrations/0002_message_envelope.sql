-- Merpati SQLite schema, version 2: the SMTP envelope of a delivered message (RFC 3461 DSN
-- parameters included), for the queue to honour later. MessageEnvelope.to_json(); NULL for
-- mail that arrived without one (imported, appended). It lives in message_blobs, beside the
-- bytes and the parse, because only per-message reads (get_envelope) ever want it: metadata
-- scans of messages (list_messages, store_flags, status) stay as narrow as before.
-- Adding a nullable column without a default only rewrites the schema, not the table.
ALTER TABLE message_blobs ADD COLUMN envelope TEXT;
