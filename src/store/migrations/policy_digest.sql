-- The SHA-256 (hex) of the recorded policy's text, read by every PostgreSQL write
-- transaction under the write lock: a replica whose policy is not the newest recorded
-- one refuses to write (`store/pg/txn.rs`). SQLite (one server) only keeps it current.
ALTER TABLE meta ADD COLUMN policy_digest TEXT;
